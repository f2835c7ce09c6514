#if canImport(Glibc)
@testable import Mosquitto
import Glibc
import Synchronization
import Testing

/// The buffers libmosquitto's socket goes through on the network thread: this process's `read`, `write` and
/// `close` serve the socket from them between `serving`'s begin and end, and pass everything else through. The
/// kernel's side is checked with `recv`/`send`, which the buffers leave alone.
@Suite struct SocketBuffersTests {
    @Test func readsAreServedFromOneReadUntilTheNextPass() throws {
        let (ours, peer) = try socketPair()
        defer { closeBoth(ours, peer) }
        let buffers = try SocketBuffers()
        try sendText(peer, "abcd")
        buffers.serving(ours) {
            #expect(readText(ours, 1) == "a")
            // One read took everything the socket had.
            #expect(kernelBytes(ours) == 0)
            try? sendText(peer, "efgh")
            #expect(readText(ours, 10) == "bcd")
            // The socket was read once in this pass: it says EAGAIN until the next, though it has more.
            #expect(readError(ours, 1) == EAGAIN)
            #expect(!buffers.hasInput)
        }
        buffers.serving(ours) { #expect(readText(ours, 10) == "efgh") }
        // Outside a pass the socket is read directly.
        try sendText(peer, "ij")
        #expect(readText(ours, 10) == "ij")
    }

    @Test func inputLeftInTheBufferIsServedByTheNextPass() throws {
        let (ours, peer) = try socketPair()
        defer { closeBoth(ours, peer) }
        let buffers = try SocketBuffers()
        try sendText(peer, "0123456789")
        buffers.serving(ours) { #expect(readText(ours, 4) == "0123") }
        #expect(buffers.hasInput)
        buffers.serving(ours) { #expect(readText(ours, 10) == "456789") }
        #expect(!buffers.hasInput)
    }

    @Test func aPassReadsTheSocketOnceHoweverMuchItHas() throws {
        let (ours, peer) = try socketPair()
        defer { closeBoth(ours, peer) }
        let buffers = try SocketBuffers(inputCapacity: 16, outputCapacity: 16)
        let text = String(repeating: "0123456789", count: 4)
        try sendText(peer, text)
        buffers.serving(ours) {
            #expect(readText(ours, 10) == "0123456789")
            #expect(readText(ours, 10) == "012345")
            #expect(readError(ours, 1) == EAGAIN)  // a flood cannot hold the pass in its reads
            #expect(kernelBytes(ours) == 24)
        }
        buffers.serving(ours) { #expect(readText(ours, 100) == String(text.dropFirst(16))) }
    }

    @Test func aReadAsLargeAsTheBufferGoesStraightToItsDestination() throws {
        let (ours, peer) = try socketPair()
        defer { closeBoth(ours, peer) }
        let buffers = try SocketBuffers(inputCapacity: 16, outputCapacity: 16)
        let text = String(repeating: "0123456789", count: 10)
        try sendText(peer, text)
        buffers.serving(ours) {
            #expect(readText(ours, 64) == String(text.prefix(64)))
            #expect(kernelBytes(ours) == 36)
            #expect(!buffers.hasInput)
        }
        buffers.serving(ours) {
            #expect(readText(ours, 8) == String(text.dropFirst(64).prefix(8)))
            #expect(kernelBytes(ours) == 20)
        }
    }

    @Test func aWriteAsLargeAsTheBufferGoesStraightToTheSocket() throws {
        let (ours, peer) = try socketPair()
        defer { closeBoth(ours, peer) }
        let buffers = try SocketBuffers(inputCapacity: 16, outputCapacity: 8)
        buffers.serving(ours) {
            #expect(writeText(ours, "0123456789") == 10)
            #expect(!buffers.hasOutput)
            #expect(kernelBytes(peer) == 10)
            #expect(writeText(ours, "ab") == 2)  // held again: something small
            #expect(writeText(ours, "0123456789") == 6)  // behind it, into the buffer: order is kept
            #expect(kernelBytes(peer) == 10)
        }
    }

    @Test func writesLeaveTogetherWhenFlushed() throws {
        let (ours, peer) = try socketPair()
        defer { closeBoth(ours, peer) }
        let buffers = try SocketBuffers()
        buffers.serving(ours) {
            #expect(writeText(ours, "hello") == 5)
            #expect(writeText(ours, " world") == 6)
            #expect(kernelBytes(peer) == 0)
            #expect(buffers.hasOutput)
            #expect(buffers.flush() == 0)
        }
        #expect(!buffers.hasOutput)
        #expect(try receiveText(peer) == "hello world")
    }

    @Test func otherDescriptorsAndOtherThreadsPassThrough() async throws {
        let (ours, peer) = try socketPair()
        let (other, otherPeer) = try socketPair()
        defer {
            closeBoth(ours, peer)
            closeBoth(other, otherPeer)
        }
        let buffers = try SocketBuffers()
        try sendText(otherPeer, "x")
        buffers.serving(ours) {
            #expect(writeText(other, "direct") == 6)
            #expect(readText(other, 10) == "x")
            #expect(kernelBytes(otherPeer) == 6)
        }
        #expect(try receiveText(otherPeer) == "direct")
        // While this thread serves `ours`, another thread's write to it is its own.
        await confirmation { wrote in
            buffers.serving(ours) {
                let thread = PlainThread { if writeText(ours, "t") == 1 { wrote() } }
                thread.join()
            }
        }
        #expect(try receiveText(peer) == "t")
    }

    @Test func aFullBufferIsWrittenOutAsItFills() throws {
        let (ours, peer) = try socketPair()
        defer { closeBoth(ours, peer) }
        let buffers = try SocketBuffers(inputCapacity: 16, outputCapacity: 8)
        buffers.serving(ours) {
            #expect(writeText(ours, "abcde") == 5)
            #expect(writeText(ours, "fghij") == 3)  // as much as there is room for: libmosquitto writes the rest again
            #expect(kernelBytes(peer) == 0)
            #expect(writeText(ours, "ij") == 2)  // the full buffer went out first
            #expect(kernelBytes(peer) == 8)
        }
        #expect(try receiveText(peer) == "abcdefgh")
        buffers.serving(ours) { #expect(buffers.flush() == 0) }
        #expect(try receiveText(peer) == "ij")
    }

    @Test func aSocketThatTakesNothingMoreSaysEAGAIN() throws {
        let (ours, peer) = try socketPair()
        defer { closeBoth(ours, peer) }
        let kernelCapacity = fillUp(ours)
        let buffers = try SocketBuffers(inputCapacity: 16, outputCapacity: 16)
        buffers.serving(ours) {
            #expect(writeText(ours, "0123456789") == 10)
            #expect(writeText(ours, "abcdefgh") == 6)
            #expect(writeError(ours, "gh") == EAGAIN)
            #expect(buffers.flush() == 0)  // nothing taken, nothing failed: it waits
            #expect(buffers.hasOutput)
        }
        #expect(drain(peer) == kernelCapacity)
        buffers.serving(ours) { #expect(buffers.flush() == 0) }
        #expect(!buffers.hasOutput)
        #expect(try receiveText(peer) == "0123456789abcdef")
    }

    @Test func closingTheSocketWritesWhatWasHeldFirst() throws {
        let (ours, peer) = try socketPair()
        defer { Glibc.close(peer) }
        // The peer never closes its end: the close stops waiting for it at its deadline.
        let buffers = try SocketBuffers(closeWaitMilliseconds: 200)
        buffers.serving(ours) {
            #expect(writeText(ours, "bye") == 3)
            errno = EINTR
            let closing = ContinuousClock.now
            #expect(Glibc.close(ours) == 0)
            #expect(ContinuousClock.now - closing >= .milliseconds(200))  // waited for the peer's end
            #expect(ContinuousClock.now - closing < .seconds(10))  // and no longer than its deadline (with room)
            #expect(errno == EINTR)  // libmosquitto's errno, as it left it
            #expect(!buffers.hasOutput)
        }
        #expect(try receiveText(peer) == "bye")
        #expect(try receiveText(peer) == "")  // end of stream
    }

    @Test func closingWaitsForASocketThatTakesWhatWasHeldLater() throws {
        let (ours, peer) = try socketPair()
        defer { Glibc.close(peer) }
        let kernelCapacity = fillUp(ours)
        // A wait far longer than the reader's delay: the test does not depend on how the threads are scheduled.
        let buffers = try SocketBuffers(inputCapacity: 16, outputCapacity: 16, closeWaitMilliseconds: 30_000)
        let received = Mutex([UInt8]())
        _ = fcntl(peer, F_SETFL, fcntl(peer, F_GETFL) & ~O_NONBLOCK)  // the reader reads until the end of the stream
        let reader = PlainThread {
            usleep(200_000)  // the close below has found the socket full by then
            var buffer = [UInt8](repeating: 0, count: 4096)
            while case let n = Glibc.recv(peer, &buffer, buffer.count, 0), n > 0 {
                received.withLock { $0 += buffer[..<n] }
            }
            shutdown(peer, Int32(SHUT_WR))  // as the broker closes after a DISCONNECT: the close waits for that too
        }
        buffers.serving(ours) {
            #expect(writeText(ours, "DISCONNECT") == 10)
            #expect(Glibc.close(ours) == 0)
        }
        reader.join()
        let bytes = received.withLock { $0 }
        #expect(bytes.count == kernelCapacity + 10)
        #expect(String(decoding: bytes.suffix(10), as: UTF8.self) == "DISCONNECT")
    }

    @Test func closingWaitsUntilItsDeadlineHoweverOftenTheSocketTakesALittle() throws {
        // Small kernel buffers, so that what is held leaves in well over a hundred small steps, each waking the close.
        let (ours, peer) = try tcpPair(bufferSize: 4096)
        defer { Glibc.close(peer) }
        let held = 1 << 20
        // 5 s: far more than the steps take; a wait that counted 100 ms per wake-up gave up after 50 of them.
        let buffers = try SocketBuffers(inputCapacity: 16, outputCapacity: held, closeWaitMilliseconds: 5000)
        let received = Mutex(0)
        let reader = PlainThread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while case let n = Glibc.recv(peer, &buffer, buffer.count, 0), n > 0 {
                received.withLock { $0 += n }
                usleep(200)
            }
            shutdown(peer, Int32(SHUT_WR))
        }
        buffers.serving(ours) {
            let chunk = String(repeating: "x", count: held / 16)
            for _ in 0..<16 { #expect(writeText(ours, chunk) == chunk.utf8.count) }
            #expect(Glibc.close(ours) == 0)
        }
        reader.join()
        #expect(received.withLock { $0 } == held)
    }

    @Test func closingWithInputUnreadStillDeliversWhatWasHeld() throws {
        // Closed with input unread, a TCP socket is reset, and the kernel drops what it has not sent yet.
        let (ours, peer) = try tcpPair(bufferSize: 4096)
        defer { Glibc.close(peer) }
        try sendText(peer, "PUBACK")  // what the broker sent last, not read by the library
        let kernelCapacity = fillUp(ours)  // the broker does not read for now: the DISCONNECT waits in our kernel
        let buffers = try SocketBuffers(closeWaitMilliseconds: 30_000)
        let outcome = Mutex((bytes: 0, tail: [UInt8](), error: Int32(0)))
        let reader = PlainThread {
            usleep(200_000)  // the close has sent what was held into the kernel and waits by then
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = Glibc.recv(peer, &buffer, buffer.count, 0)
                if n <= 0 {
                    if n < 0 { outcome.withLock { $0.error = errno } }
                    break
                }
                outcome.withLock { $0.bytes += n; $0.tail = Array(($0.tail + buffer[..<n]).suffix(10)) }
            }
            shutdown(peer, Int32(SHUT_WR))
        }
        buffers.serving(ours) {
            #expect(writeText(ours, "DISCONNECT") == 10)
            #expect(Glibc.close(ours) == 0)
        }
        reader.join()
        let (bytes, tail, error) = outcome.withLock { $0 }
        #expect(error == 0, "the connection was reset: \(String(cString: strerror(error)))")
        #expect(bytes == kernelCapacity + 10)
        #expect(String(decoding: tail, as: UTF8.self) == "DISCONNECT")
    }

    @Test func aWriteThatSucceedsLeavesErrnoAsItWas() throws {
        let (ours, peer) = try socketPair()
        defer { closeBoth(ours, peer) }
        _ = fillUp(ours)
        let buffers = try SocketBuffers(inputCapacity: 16, outputCapacity: 64 * 1024)
        let chunk = String(repeating: "x", count: 1024)
        buffers.serving(ours) {
            for _ in 0..<64 { #expect(writeText(ours, chunk) == 1024) }  // held: the buffer is full now
        }
        #expect(drain(peer, upTo: 16 * 1024) > 0)  // room in the kernel for part of what is held
        buffers.serving(ours) {
            // The full buffer is flushed first: the kernel takes part of it, then says EAGAIN; the write succeeds.
            errno = 0
            #expect(writeText(ours, chunk) == 1024)
            #expect(errno == 0)  // libmosquitto reads errno after a read or write that succeeded (OpenSSL's too)
        }
    }

    @Test func aWriteThatFailsIsReportedByTheNextRead() throws {
        signal(SIGPIPE, SIG_IGN)  // as libmosquitto sets it
        let (ours, peer) = try socketPair()
        defer { Glibc.close(ours) }
        Glibc.close(peer)
        let buffers = try SocketBuffers()
        buffers.serving(ours) {
            #expect(writeText(ours, "lost") == 4)
            #expect(buffers.flush() == EPIPE)
            #expect(!buffers.hasOutput)
            #expect(buffers.hasInput)
            #expect(readError(ours, 1) == EPIPE)
            #expect(writeError(ours, "x") == EPIPE)
        }
        buffers.reset()
        #expect(!buffers.hasInput)
    }

    @Test func libmosquittoFindsTheseFunctions() throws {
        // The dynamic linker binds libmosquitto's calls as `dlsym` finds them in the global scope (the executable
        // first): not the C library's, and the one found for `read` reads through the buffers.
        let global = UnsafeMutableRawPointer(bitPattern: 0)  // RTLD_DEFAULT
        let libc = try #require(dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD))
        defer { dlclose(libc) }
        for name in ["read", "write", "close"] {
            let found = try #require(dlsym(global, name))
            #expect(found != dlsym(libc, name), "\(name)")
        }
        typealias Read = @convention(c) (Int32, UnsafeMutableRawPointer?, Int) -> Int
        let globalRead = unsafeBitCast(dlsym(global, "read"), to: Read.self)
        let (ours, peer) = try socketPair()
        defer { closeBoth(ours, peer) }
        let buffers = try SocketBuffers()
        try sendText(peer, "abcd")
        buffers.serving(ours) {
            var byte: UInt8 = 0
            #expect(globalRead(ours, &byte, 1) == 1)
            #expect(kernelBytes(ours) == 0)
        }
    }

    @Test func socketPairsFailOnlyWhereRefused() async throws {
        var ends: [Int32] = [-1, -1]
        let refused = SocketBuffers.withoutSocketPairs { () -> Int32? in
            // Another thread meanwhile makes its own.
            let other = PlainThread {
                var ends: [Int32] = [-1, -1]
                if socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0 { closeBoth(ends[0], ends[1]) } else { abort() }
            }
            other.join()
            return socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0 ? nil : errno
        }
        #expect(refused == EMFILE)
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0)
        closeBoth(ends[0], ends[1])
    }

    @Test func buffersBegunWithAnotherSocketDropWhatTheyHeld() throws {
        let (first, firstPeer) = try socketPair()
        let (second, secondPeer) = try socketPair()
        defer {
            closeBoth(first, firstPeer)
            closeBoth(second, secondPeer)
        }
        let buffers = try SocketBuffers()
        try sendText(firstPeer, "old input")
        buffers.serving(first) {
            #expect(readText(first, 3) == "old")
            #expect(writeText(first, "old output") == 10)
        }
        #expect(buffers.hasInput && buffers.hasOutput)
        buffers.serving(second) {
            #expect(!buffers.hasInput && !buffers.hasOutput)
            #expect(buffers.flush() == 0)
        }
        #expect(kernelBytes(firstPeer) == 0)
        #expect(kernelBytes(secondPeer) == 0)
    }
}

// MARK: - The calls libmosquitto makes

private func readText(_ fd: Int32, _ count: Int) -> String? {
    var buffer = [UInt8](repeating: 0, count: count)
    let n = Glibc.read(fd, &buffer, count)
    return n < 0 ? nil : String(decoding: buffer[..<n], as: UTF8.self)
}

private func readError(_ fd: Int32, _ count: Int) -> Int32 {
    var buffer = [UInt8](repeating: 0, count: count)
    return Glibc.read(fd, &buffer, count) < 0 ? errno : 0
}

private func writeText(_ fd: Int32, _ text: String) -> Int {
    let bytes = Array(text.utf8)
    return Glibc.write(fd, bytes, bytes.count)
}

private func writeError(_ fd: Int32, _ text: String) -> Int32 {
    let bytes = Array(text.utf8)
    return Glibc.write(fd, bytes, bytes.count) < 0 ? errno : 0
}

#endif

/// Faults of the network loop's own system calls, injected (nothing else provokes them).
@Suite struct NetworkLoopFaultTests {
    /// `poll` failing (ENOMEM) ends the connection as a lost one: libmosquitto is not told, and the reconnect that
    /// follows closes the socket, so without it the client would go on as connected (no `.disconnected`) while a new
    /// connection was made under it.
    @Test func aFailingPollEndsTheConnectionAsALostOne() async throws {
        let broker = try await TestBroker.started()
        defer { broker.stop() }
        var options = try testOptions(broker)
        options.reconnect = MQTTReconnectPolicy(minimumDelay: .milliseconds(50), maximumDelay: .milliseconds(50))
        let client = try MosquittoClient(options: options, logger: quietLogger)
        defer { client.stop() }
        let seen = Mutex<[String]>([])
        let events = Task {
            for await event in client.connectionEvents {
                let name = if case .connected = event { "connected" } else { "disconnected" }
                seen.withLock { $0.append(name) }
            }
        }
        defer { events.cancel() }
        try await client.connect()
        try await client.publish(topic: "poll/before", payload: [1], qos: .atLeastOnce)
        client.waker.failNextPoll(with: ENOMEM)
        #expect(try await eventually { seen.withLock { $0.count } >= 3 })
        #expect(seen.withLock { $0.prefix(3) } == ["connected", "disconnected", "connected"])
        try await client.publish(topic: "poll/after", payload: [2], qos: .atLeastOnce)
    }
}
