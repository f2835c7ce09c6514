/// Finds a spooled message the broker closes the connection on instead of answering it, so that it does not keep the
/// broker link down for good. mosquitto 2.0.11 with `max_queued_messages 0` closes the connection of a client whose
/// publish it refuses (its ACL, its `message_size_limit`), and when more of the client's packets are still unread the
/// refusal may be lost with the connection. The replay would then send that message first after every reconnect, and
/// lose the link each time.
///
/// After a connection ended with publishes unanswered, the replay starts again with a window of one, which grows by
/// one with each answer up to the full window (so a healthy link is back at full speed after as many answers). An
/// entry that was out alone and unanswered when the connection ended within `closeWithin` of its publish,
/// `lossesToRefuse` connections in a row, is taken as refused: the replay sets it aside (acknowledges it unsent) when
/// it reads it again. (Best-effort publishes the gateway makes meanwhile do not count: they are not sent again.) A
/// link that fails that often, each time that soon after the same message went out alone, would lose that message
/// too: it is counted and logged, like a refusal.
struct ReplayProbe {
    static let lossesToRefuse = 3
    /// A broker closes the connection on a message it refuses as soon as it reads it.
    static let closeWithin = Duration.seconds(2)

    /// The replay's window while probing; nil at full speed.
    private(set) var window: Int?
    /// The entry the replay published while the window was one, and when, until it is answered.
    private var alone: (entry: SpoolEntry, at: ContinuousClock.Instant)?
    /// The entry that was out alone at the last connection losses, and how many in a row.
    private var suspect: SpoolEntry?
    private var losses = 0

    /// The connection ended `now`, with `unanswered` publishes of any kind awaiting their answer.
    mutating func connectionLost(unanswered: Int, at now: ContinuousClock.Instant) {
        if let alone, now - alone.at <= Self.closeWithin {
            if alone.entry == suspect {
                losses += 1
            } else {
                (suspect, losses) = (alone.entry, 1)
            }
        }
        alone = nil
        if unanswered > 0 { window = 1 }
    }

    /// The replay publishes `entry` `now`.
    mutating func publishing(_ entry: SpoolEntry, at now: ContinuousClock.Instant) {
        if window == 1 { alone = (entry, now) }
    }

    /// The broker answered a replayed entry (PUBACK or refusal): the link carries publishes, the window grows.
    mutating func answered(fullWindow: Int) {
        alone = nil
        (suspect, losses) = (nil, 0)
        guard let current = window else { return }
        window = current + 1 >= fullWindow ? nil : current + 1
    }

    /// The replay caught up: the next one starts at full speed unless a loss says otherwise.
    mutating func caughtUp() {
        window = nil
        alone = nil
    }

    /// Whether the replay sets `entry` aside instead of publishing it; the suspicion ends with it.
    mutating func setsAside(_ entry: SpoolEntry) -> Bool {
        guard losses >= Self.lossesToRefuse, entry == suspect else { return false }
        (suspect, losses) = (nil, 0)
        return true
    }
}
