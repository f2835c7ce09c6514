#if canImport(Glibc)
import Glibc

// Sockets for tests of what libmosquitto's socket goes through (SocketBuffersTests, PubackCoalescingTests).

struct SocketError: Error { let errno: Int32 }

/// A connected pair of non-blocking stream sockets.
func socketPair() throws -> (Int32, Int32) {
    var ends: [Int32] = [-1, -1]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &ends) == 0 else {
        throw SocketError(errno: errno)
    }
    return (ends[0], ends[1])
}

/// A TCP socket that no process the tests spawn inherits (close-on-exec): a test broker started meanwhile would
/// otherwise hold its port for as long as it runs.
func tcpSocket() -> Int32 {
    socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
}

/// A connected TCP pair on loopback, ours non-blocking, both with kernel buffers of about `bufferSize` (set before
/// the connection, so that the window is small too).
func tcpPair(bufferSize: Int32) throws -> (Int32, Int32) {
    let listener = tcpSocket()
    defer { Glibc.close(listener) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    var size = bufferSize
    _ = setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    _ = setsockopt(listener, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    let ours = tcpSocket()
    _ = setsockopt(ours, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    _ = setsockopt(ours, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    let connected = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
            bind(listener, address, length) == 0 && listen(listener, 1) == 0 && getsockname(listener, address, &length) == 0
                && connect(ours, address, length) == 0
        }
    }
    let peer = connected ? accept(listener, nil, nil) : -1
    guard peer >= 0 else {
        let error = errno
        Glibc.close(ours)
        throw SocketError(errno: error)
    }
    _ = fcntl(ours, F_SETFL, fcntl(ours, F_GETFL) | O_NONBLOCK)
    return (ours, peer)
}

func closeBoth(_ a: Int32, _ b: Int32) {
    Glibc.close(a)
    Glibc.close(b)
}

/// Waits (up to 5 s) until the kernel holds at least `count` bytes for `fd` to read: loopback mostly delivers within
/// the peer's `send`, but a busy box may leave it to a kernel thread.
func waitUntilArrived(_ fd: Int32, _ count: Int) throws {
    let deadline = ContinuousClock.now + .seconds(5)
    while kernelBytes(fd) < count {
        guard ContinuousClock.now < deadline else { throw SocketError(errno: ETIMEDOUT) }
        usleep(1000)
    }
}

/// Bytes waiting in the kernel for `fd` to read, seen with `recv`, which the buffers do not serve.
func kernelBytes(_ fd: Int32) -> Int {
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    return max(0, recv(fd, &buffer, buffer.count, Int32(MSG_PEEK | MSG_DONTWAIT)))
}

func sendText(_ fd: Int32, _ text: String) throws {
    let bytes = Array(text.utf8)
    guard Glibc.send(fd, bytes, bytes.count, 0) == bytes.count else { throw SocketError(errno: errno) }
}

func receiveText(_ fd: Int32) throws -> String {
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
    guard n >= 0 else { throw SocketError(errno: errno) }
    return String(decoding: buffer[..<n], as: UTF8.self)
}

/// Sends until the kernel takes no more; returns how much it took.
func fillUp(_ fd: Int32) -> Int {
    let chunk = [UInt8](repeating: 0x2A, count: 4096)
    var total = 0
    while case let n = Glibc.send(fd, chunk, chunk.count, Int32(MSG_DONTWAIT)), n > 0 { total += n }
    return total
}

/// Receives until the kernel has nothing (or `limit` was received); returns how much there was.
func drain(_ fd: Int32, upTo limit: Int = .max) -> Int {
    var buffer = [UInt8](repeating: 0, count: 4096)
    var total = 0
    while total < limit, case let n = recv(fd, &buffer, min(buffer.count, limit - total), Int32(MSG_DONTWAIT)), n > 0 { total += n }
    return total
}
#endif
