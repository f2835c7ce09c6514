import GatehouseDevice

/// The totals printed when the simulator exits.
struct Summary: Sendable {
    var devices = 0
    var finished = 0
    var failed = 0
    var stats = DeviceClientStats()
    var duration: Duration = .zero

    var seconds: Double {
        Double(self.duration.components.seconds) + Double(self.duration.components.attoseconds) / 1e18
    }

    /// Messages written per second (first writes; resends not counted).
    var messagesPerSecond: Double {
        self.seconds > 0 ? Double(self.stats.sent) / self.seconds : 0
    }

    var json: String {
        JSONValue.object(JSONObject([
            ("devices", .number(JSONNumber(self.devices))),
            ("finished", .number(JSONNumber(self.finished))),
            ("failed", .number(JSONNumber(self.failed))),
            ("sent", .number(JSONNumber(self.stats.sent))),
            ("acked", .number(JSONNumber(self.stats.acked))),
            ("nacked", .number(JSONNumber(self.stats.nacked))),
            ("resent", .number(JSONNumber(self.stats.resent))),
            ("commands_answered", .number(JSONNumber(self.stats.commandsAnswered))),
            ("reconnects", .number(JSONNumber(self.stats.reconnects))),
            ("duration_s", .rounded(self.seconds, places: 3)),
            ("msgs_per_s", .rounded(self.messagesPerSecond, places: 1)),
        ])).serializedString()
    }

    var text: String {
        """
        devices            \(self.devices) (\(self.finished) finished, \(self.failed) failed)
        sent               \(self.stats.sent)
        acked              \(self.stats.acked)
        nacked             \(self.stats.nacked)
        resent             \(self.stats.resent)
        commands answered  \(self.stats.commandsAnswered)
        reconnects         \(self.stats.reconnects)
        duration           \(Self.format(self.seconds, places: 1)) s
        msgs/s             \(Self.format(self.messagesPerSecond, places: 1))
        """
    }

    private static func format(_ value: Double, places: Int) -> String {
        guard case .number(let number) = JSONValue.rounded(value, places: places) else { return "0" }
        return number.text
    }
}
