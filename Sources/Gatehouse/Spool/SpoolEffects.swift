/// What `SpoolState`'s decisions hand back to `Spool`, which acts on them with its lock released.
extension SpoolState {
    /// What the caller does with the lock released.
    struct Effects {
        /// Segment files to delete (finished, or dropped with what they held).
        var deleteSegments: [UInt64] = []
        /// Start a group commit on the spool's queue.
        var flush = false
        /// The checkpoint moved: save it soon (one save covers every move until then).
        var saveCheckpoint = false
        /// Entries lost to make room (`when_full: drop_oldest`) and to `max_age`: worth a warning.
        var droppedToFit = 0
        var expiredByAge = 0
    }

    /// What `append` decided.
    struct Appended {
        /// Why the entry is not taken; nil when it is.
        var refusal: Spool.AppendError?
        /// For an entry its appender publishes itself, when the reader will skip it (see `Spool.appendPublished`).
        var ticket: Ticket?
        /// Apply these whether or not the entry was taken: making room may have dropped segments.
        var effects = Effects()
    }

    /// A record its appender publishes itself (`appendPublished`): the reader skips it once it is durable.
    struct PublishedRecord {
        var ticket: Ticket
        var size: Int
        var ts: Int64
    }

    /// The records collected since the last group commit, to be written with one sync.
    struct Batch {
        var bytes: [UInt8]
        var completions: [Spool.Completion]
        var records: Int
        var newestTs: Int64
        /// The clock offset every record of the batch is stamped with (a batch is one segment's).
        var clockOffset: Int64
        /// The leading records that were appended with `appendPublished`.
        var published: [PublishedRecord]
        /// The wall clock was stepped since the active segment's records were stamped: start a new segment
        /// first, so that each segment has one clock offset.
        var startsNewSegment: Bool
    }

    /// Where a batch is written, or why it is not.
    enum WriteTarget: Equatable {
        case segment(number: UInt64, writer: Int32, durableEnd: Int)
        case refused(String)
    }

    /// Durable bytes not read yet: from `start` to `end` in one segment, which holds `records` from where
    /// reading starts.
    struct ReadRange: Equatable {
        var start: Position
        var end: Int
        var records: Int
    }

    /// A damaged spot a read stopped at: reading goes on at `resumeAt` (the next good record, or the end of the
    /// range), where `intactAfter` good records of the range lie (`SegmentScan.resumption`).
    struct Damage: Equatable {
        var resumeAt: Int
        var intactAfter: Int
    }

    /// What the records read from a `ReadRange` became.
    struct ReadResult {
        var items: [Spool.Item] = []
        /// Entries lost to a damaged spot at `offset`: worth an error in the log.
        var lostToDamage: (count: Int, offset: Int)?
    }

    /// What a test write needs: the active segment, to cut back to its durable end, and the checkpoint to
    /// save durably.
    struct Probe {
        var writer: Int32
        var segment: UInt64
        var durableEnd: Int
        var checkpoint: Position
        /// Writes were refused before this probe.
        var wasFailing: Bool
    }

    /// What the housekeeping round (every second) does.
    enum Chore: Equatable {
        /// The spool is shut down: no more rounds.
        case stop
        /// Off, and the last attempt to open was less than 5 s ago.
        case wait
        /// Off: try to open it.
        case open
        /// Release kept entries, move the checkpoint, expire old segments; test writing first after a failed
        /// write (every 2 s).
        case tidy(probeFirst: Bool)
    }
}
