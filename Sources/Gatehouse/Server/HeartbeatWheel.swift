import NIOCore

/// A connection that `HeartbeatWheel` beats once a period.
protocol HeartbeatMember: AnyObject {
    /// Where the wheel keeps the member; nil outside it. Only the wheel sets it.
    var heartbeatPosition: HeartbeatWheel.Position? { get set }
    func heartbeat()
}

/// The heartbeats of the devices on one event loop, on one timer. The period is cut into `slotCount` ticks; each
/// member sits in one slot and is beaten on its slot's tick, once a period. A member joins the slot whose tick comes
/// last, so its first beat comes a period after it joined (less at most a tick), and the beats of devices that
/// connect over time stay spread over the period.
///
/// Why not a `RepeatedTask` per device: each kept a task, its scheduled future and closures (a few hundred bytes for
/// every idle device), rescheduled itself every period, and NIO cancels a scheduled task by searching the loop's
/// whole queue of them, so each disconnect cost time in proportion to the devices on its loop (docs/benchmarks.md).
/// Everything here runs on the wheel's loop.
final class HeartbeatWheel {
    struct Position: Equatable {
        fileprivate var slot: Int32
        fileprivate var index: Int32
    }

    static let slotCount = 16

    private let loop: any EventLoop
    private let tick: TimeAmount
    private var slots = [[any HeartbeatMember]](repeating: [], count: slotCount)
    /// The slot the next tick beats.
    private var next = 0
    private var memberCount = 0
    /// Runs while the wheel has members.
    private var timer: RepeatedTask?

    init(period: TimeAmount, loop: any EventLoop) {
        self.loop = loop
        self.tick = .nanoseconds(max(1, period.nanoseconds / Int64(Self.slotCount)))
    }

    func add(_ member: any HeartbeatMember) {
        loop.preconditionInEventLoop()
        guard member.heartbeatPosition == nil else { return }
        let slot = (next + Self.slotCount - 1) % Self.slotCount
        member.heartbeatPosition = Position(slot: Int32(slot), index: Int32(slots[slot].count))
        slots[slot].append(member)
        memberCount += 1
        if timer == nil {
            // The timer keeps the wheel until the last member leaves and `remove` cancels it.
            let wheel = NIOLoopBound(self, eventLoop: loop)
            timer = loop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { _ in wheel.value.beat() }
        }
    }

    /// Takes `member` out (nothing happens if it is not in): its slot's last member takes its place.
    func remove(_ member: any HeartbeatMember) {
        loop.preconditionInEventLoop()
        guard let position = member.heartbeatPosition else { return }
        member.heartbeatPosition = nil
        let slot = Int(position.slot)
        let last = slots[slot].removeLast()
        if last !== member {
            slots[slot][Int(position.index)] = last
            last.heartbeatPosition = position
        }
        memberCount -= 1
        if memberCount == 0 {
            timer?.cancel()
            timer = nil
        }
    }

    /// One tick: beats the members of the next slot. A beat may end a connection, and so remove members: the slot is
    /// walked as it was when the tick began, skipping those removed meanwhile.
    private func beat() {
        let beaten = slots[next]
        next = (next + 1) % Self.slotCount
        for member in beaten where member.heartbeatPosition != nil {
            member.heartbeat()
        }
    }
}
