#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Guards the libmosquitto handle while ``MosquittoClient`` starts a fresh session on it (`mosquitto_reinitialise`,
/// which frees and re-creates everything inside the handle, its mutexes included): the threads that publish,
/// subscribe and unsubscribe share it, the fresh start takes it alone.
///
/// A `pthread_rwlock` rather than a `Mutex`: publishers from several event loops keep running side by side
/// (libmosquitto orders them with its own mutexes), and glibc's default rwlock prefers readers, so a publish made
/// inside a publish's completion (which may run before the outer publish returns) cannot deadlock on a waiting
/// fresh start. That start waits for a gap between publishes; it runs only between connections.
final class SessionLock: @unchecked Sendable {
    // @unchecked: the lock lives at a fixed address of its own, as pthread requires, and is used only through it.
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_rwlock_t())
        pthread_rwlock_init(lock, nil)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deinitialize(count: 1)
        lock.deallocate()
    }

    /// Runs `body` while no fresh start can run (other sharers may).
    func sharing<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    /// Runs `body` alone: no sharer runs meanwhile.
    func exclusively<Result>(_ body: () -> Result) -> Result {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return body()
    }
}
