import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SIGINT and SIGTERM as an async wait, so the simulator can stop its devices cleanly.
enum ShutdownSignal {
    /// Returns the name of the first SIGINT or SIGTERM received after the call.
    static func wait() async -> String {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(1))
        let sources = [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")].map { signalNumber, name in
            // Dispatch only sees the signal once the default action (terminate) is switched off.
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { continuation.yield(name) }
            source.resume()
            return source
        }
        defer {
            // A second Ctrl-C while devices close cleanly terminates at once.
            for source in sources { source.cancel() }
            signal(SIGINT, SIG_DFL)
            signal(SIGTERM, SIG_DFL)
        }
        var iterator = stream.makeAsyncIterator()
        return await iterator.next() ?? "cancelled"
    }
}
