import Testing

@testable import Gatehouse

@Suite struct BearerTokenTests {
    @Test("the token after `Bearer`, blanks around it ignored", arguments: [
        ("Bearer abc.def", "abc.def"), ("bearer abc", "abc"), ("Bearer   abc \t", "abc"), ("BEARER \tabc", "abc"),
    ])
    func token(header: String, token: String) {
        #expect(bearerToken(in: header) == token)
    }

    @Test("no token: no header, another scheme, or nothing but blanks", arguments: [
        nil, "", "Bearer", "Bearer ", "Bearer \t ", "Basic abc", "Bearer\tabc", "Token abc",
    ] as [String?])
    func none(header: String?) {
        #expect(bearerToken(in: header) == nil)
    }
}
