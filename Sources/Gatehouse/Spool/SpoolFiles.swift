import CDispatch  // `stat`'s members: see SpoolClock.swift
import CoreFoundation
import Foundation
import Logging
import Synchronization

/// The spool directory: numbered segment files (`segment-000000000001.log`, appended in order) and a
/// `checkpoint` naming the first entry not yet acknowledged by the broker. Thin POSIX wrappers, so
/// errors carry the path and `errno` and writes can be made durable with `fdatasync`.
struct SpoolFiles {
    let dir: String

    struct IOError: Error, CustomStringConvertible {
        var description: String
        /// The path names something that is not a usable directory, or one the gateway may not use: the
        /// config is wrong (a disk that is full or failing is not).
        var isMisconfiguration: Bool
        /// The file's own bytes cannot be read (a failing disk, or not a file at all): nothing else would change that.
        var isUnreadableFile: Bool
        /// The process ran short (file descriptors, memory): trying again later may work.
        var isShortOfResources: Bool
        init(_ action: String, _ path: String, errno code: Int32 = errno) {
            description = "cannot \(action) \(path): \(String(cString: strerror(code)))"
            isMisconfiguration = [ENOTDIR, EACCES, EPERM, ENAMETOOLONG, ELOOP, EISDIR].contains(code)
            isUnreadableFile = code == EIO || code == EISDIR
            isShortOfResources = [EMFILE, ENFILE, ENOMEM, EINTR, EAGAIN].contains(code)
        }
    }

    /// A position in the log: a segment number and a byte offset in it.
    struct Position: Equatable, Comparable {
        var segment: UInt64
        var offset: Int
        static func < (a: Position, b: Position) -> Bool { (a.segment, a.offset) < (b.segment, b.offset) }
    }

    func segmentPath(_ number: UInt64) -> String {
        let digits = String(number)
        return "\(dir)/segment-\(String(repeating: "0", count: max(0, 12 - digits.count)))\(digits).log"
    }

    var checkpointPath: String { "\(dir)/checkpoint" }

    /// Creates the directory (and parents) if needed and checks it is writable.
    func prepare() throws(IOError) {
        var path = dir.hasPrefix("/") ? "" : "."
        for component in dir.split(separator: "/") {
            path += "/" + component
            if mkdir(path, 0o750) != 0, errno != EEXIST { throw IOError("create the spool directory", path) }
        }
        guard access(dir, W_OK | X_OK) == 0 else { throw IOError("write to the spool directory", dir) }
    }

    /// The directories this process holds the lock of, with the lock file's descriptor (kept open: closing any
    /// descriptor of the file would release a POSIX lock).
    private static let locked = Mutex<[String: Int32]>([:])

    /// Takes the directory's lock, `<dir>/spool.lock`, for the rest of the process: a second gatehouse on the same
    /// spool would recover, cut and delete the running one's segments (acked messages among them). A POSIX record
    /// lock, which the process holds once however often it opens the spool (a spool opened again in one process, as
    /// the tests do, is the same owner). Another process holding it is a misconfiguration; a file system without
    /// such locks (some NFS or FUSE mounts) is said in the log, and the spool runs without.
    func lock(logger: Logger) throws(IOError) {
        try Self.locked.withLock { (locked) throws(IOError) in
            guard locked[dir] == nil else { return }
            let path = dir + "/spool.lock"
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw IOError("open", path) }
            var whole = flock(l_type: Int16(F_WRLCK), l_whence: Int16(SEEK_SET), l_start: 0, l_len: 0, l_pid: 0)
            guard fcntl(fd, F_SETLK, &whole) == 0 else {
                let code = errno
                if [ENOLCK, EINVAL, EOPNOTSUPP].contains(code) {
                    logger.warning("the spool directory cannot be locked (\(String(cString: strerror(code)))): make sure no other gatehouse uses it",
                                   metadata: ["spool.dir": "\(dir)"])
                    locked[dir] = fd
                    return
                }
                close(fd)
                var error = IOError("lock", path, errno: code)
                if code == EAGAIN || code == EACCES {
                    error.description = "\(dir) is in use by another running gatehouse (one gateway per spool directory)"
                    error.isMisconfiguration = true
                    error.isShortOfResources = false
                }
                throw error
            }
            locked[dir] = fd
        }
    }

    /// Segment numbers present on disk, oldest first. A number above `maxSegmentNumber` is not one of ours.
    func segmentNumbers() -> [UInt64] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.compactMap { name -> UInt64? in
            guard name.hasPrefix("segment-"), name.hasSuffix(".log") else { return nil }
            return UInt64(name.dropFirst("segment-".count).dropLast(".log".count)).flatMap(Self.validSegmentNumber)
        }.sorted()
    }

    /// Above the segment numbers the spool reads: numbers go up by one from 1, so a new segment a second would take
    /// millions of years to reach it. A file name or checkpoint at or above it is damage (or was put there), and is
    /// ignored, so that the next number (`+ 1`, at most this) can never overflow and stop the gateway at every start.
    static let maxSegmentNumber: UInt64 = 1 << 48

    private static func validSegmentNumber(_ number: UInt64) -> UInt64? {
        number < maxSegmentNumber ? number : nil
    }

    func readAll(_ path: String) throws(IOError) -> [UInt8] {
        var status = stat()
        guard stat(path, &status) == 0 else { throw IOError("read", path) }
        return try read(path, offset: 0, count: Int(status.st_size))
    }

    /// Reads up to `count` bytes at `offset`.
    func read(_ path: String, offset: Int, count: Int) throws(IOError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw IOError("open", path) }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw IOError("read", path) }
            if n == 0 { break }
            done += n
        }
        return Array(bytes.prefix(done))
    }

    /// Opens a new, empty segment for appending and makes its directory entry durable.
    func create(_ number: UInt64) throws(IOError) -> Int32 {
        let path = segmentPath(number)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw IOError("create", path) }
        do {
            try syncDirectory()
        } catch {
            close(fd)  // tried again at the next flush: a descriptor each time otherwise
            throw error
        }
        return fd
    }

    /// Appends `bytes` and waits until they are on stable storage (the group commit's one sync).
    func appendDurably(_ fd: Int32, _ bytes: [UInt8], path: String) throws(IOError) {
        try writeAll(fd, bytes, path: path)
        guard fdatasync(fd) == 0 else { throw IOError("sync", path) }
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(IOError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw IOError("write", path) }
            done += n
        }
    }

    /// Replaces a file's content atomically (write a temporary file, sync, rename).
    func replace(_ path: String, with bytes: [UInt8], durable: Bool) throws(IOError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw IOError("create", temporary) }
        defer { close(fd) }
        try writeAll(fd, bytes, path: temporary)
        if durable, fdatasync(fd) != 0 { throw IOError("sync", temporary) }
        guard rename(temporary, path) == 0 else { throw IOError("rename \(temporary) to", path) }
        if durable { try syncDirectory() }
    }

    /// Cuts a file to `size` bytes, durably.
    func truncate(_ path: String, to size: Int) throws(IOError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw IOError("open", path) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw IOError("truncate", path) }
        guard fdatasync(fd) == 0 else { throw IOError("sync", path) }
    }

    func remove(_ number: UInt64) {
        unlink(segmentPath(number))
    }

    /// Renames a segment that cannot be read out of the spool's way (`.unreadable-<Unix ms>`, so a later one of the
    /// same number does not replace it), for an operator; returns the new path, or nil when even that failed.
    func setAside(_ number: UInt64) -> String? {
        let path = segmentPath(number)
        let aside = "\(path).unreadable-\(nowMs())"
        return rename(path, aside) == 0 ? aside : nil
    }

    private func syncDirectory() throws(IOError) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw IOError("open", dir) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw IOError("sync", dir) }
    }

    // MARK: Clocks

    /// The boot and clock offset (wall minus monotonic) a segment's records are stamped with.
    struct SegmentClock: Equatable {
        var boot: String
        var offset: Int64
    }

    var clocksPath: String { "\(dir)/clocks" }

    /// Notes the clock a segment's records are stamped with, a line per segment (`<segment> <boot> <offset> <crc>`),
    /// when its first records are written. Not synced, and a failure is ignored: without it an earlier run's records
    /// are aged by their wall time alone, as before the file existed.
    func noteClock(_ clock: SegmentClock, of segment: UInt64) {
        let fd = open(clocksPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let line = Self.clockLine(clock, of: segment)
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// The clocks noted, by segment (the last line of a segment wins). A line whose checksum does not match is
    /// skipped (its segment is then aged by wall time alone): a damaged offset read as good would age intact entries
    /// by a wrong clock, and could expire them.
    func readClocks() -> [UInt64: SegmentClock] {
        guard let bytes = try? readAll(clocksPath) else { return [:] }
        var clocks: [UInt64: SegmentClock] = [:]
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            guard let space = line.lastIndex(of: UInt8(ascii: " ")),
                  UInt32(String(decoding: line[(space + 1)...], as: UTF8.self), radix: 16) == CRC32.checksum(line[..<space])
            else { continue }
            let fields = String(decoding: line[..<space], as: UTF8.self).split(separator: " ")
            guard fields.count == 3, let segment = UInt64(fields[0]), let offset = Int64(fields[2]) else { continue }
            clocks[segment] = SegmentClock(boot: String(fields[1]), offset: offset)
        }
        return clocks
    }

    /// `<segment> <boot> <offset> <crc>\n`, the CRC-32 of what comes before its space, in hex.
    static func clockLine(_ clock: SegmentClock, of segment: UInt64) -> [UInt8] {
        let text = Array("\(segment) \(clock.boot) \(clock.offset)".utf8)
        return text + Array(" \(String(CRC32.checksum(text), radix: 16))\n".utf8)
    }

    /// Drops the lines of segments that are gone (a running spool deletes segments as the broker confirms them).
    func compactClocks() {
        let present = Set(segmentNumbers())
        keepClocks(readClocks().filter { present.contains($0.key) })
    }

    /// Rewrites the file with `clocks` alone (those of segments still there), so that it does not grow.
    func keepClocks(_ clocks: [UInt64: SegmentClock]) {
        let lines = clocks.sorted { $0.key < $1.key }.flatMap { Self.clockLine($0.value, of: $0.key) }
        try? replace(clocksPath, with: lines, durable: false)
    }

    // MARK: Checkpoint

    func readCheckpoint() -> Position? {
        guard let text = try? String(contentsOfFile: checkpointPath, encoding: .utf8) else { return nil }
        let fields = text.split(whereSeparator: \.isWhitespace)
        guard fields.count == 2, let segment = UInt64(fields[0]).flatMap(Self.validSegmentNumber), let offset = Int(fields[1]), offset >= 0
        else { return nil }
        return Position(segment: segment, offset: offset)
    }

    /// Normally not synced: a lost checkpoint only means entries are published again (duplicates, never losses).
    func writeCheckpoint(_ position: Position, durable: Bool = false) throws(IOError) {
        try replace(checkpointPath, with: Array("\(position.segment) \(position.offset)\n".utf8), durable: durable)
    }
}
