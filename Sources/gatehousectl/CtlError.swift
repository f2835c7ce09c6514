/// A failure that ends a `gatehousectl` command with a one-line message on stderr and a specific exit status.
///
/// Exit statuses are part of the CLI contract, so scripts can tell the cases apart:
/// 1 = the operation completed with a negative result (device answered `error`, not found, ...),
/// 2 = usage, configuration or broker problem, 3 = no answer arrived in time.
struct CtlError: Error, CustomStringConvertible {
    /// Why the command failed, mapped to an exit status.
    enum Code: Int32, Sendable {
        /// The operation ran but its outcome was negative (not found, rejected, device error).
        case failed = 1
        /// Bad arguments, unreadable configuration, or the broker could not be used.
        case usage = 2
        /// Nothing answered before the deadline.
        case noResponse = 3
    }

    /// Why the command failed.
    var code: Code
    /// One line for the operator, without the `gatehousectl:` prefix.
    var message: String

    /// Creates an error.
    init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    var description: String { message }

    /// A usage or configuration error (exit status 2).
    static func usage(_ message: String) -> CtlError { CtlError(.usage, message) }

    /// A negative outcome (exit status 1).
    static func failed(_ message: String) -> CtlError { CtlError(.failed, message) }
}
