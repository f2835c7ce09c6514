import Testing

@testable import Gatehouse

/// What the listener adds to Hummingbird's answers.
@Suite struct GatewayListenerTests {
    @Test func httpDatesHaveRFC9110sFormAndEnglishNames() {
        #expect(GatewayListener.httpDate(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(GatewayListener.httpDate(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(GatewayListener.httpDate(1_798_761_599) == "Thu, 31 Dec 2026 23:59:59 GMT")
    }
}
