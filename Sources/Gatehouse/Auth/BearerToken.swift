/// The token of an `Authorization: Bearer <token>` header value, for devices and viewers alike; nil without
/// one (no header, another scheme, nothing but blanks after it). Spaces and tabs around the token are
/// trimmed by hand: Foundation's trimming cost more than checking the token's signature.
func bearerToken(in header: String?) -> String? {
    guard let header else { return nil }
    let parts = header.split(separator: " ", maxSplits: 1)
    guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
    let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
    guard let first = parts[1].firstIndex(where: { !isBlank($0) }), let last = parts[1].lastIndex(where: { !isBlank($0) }) else {
        return nil
    }
    return String(parts[1][first...last])
}
