import GatehouseDevice

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One simulated device: a client plus the behaviour that feeds it.
protocol SimulatedDevice: Sendable {
    /// The device id.
    var id: String { get }
    /// The connection to the gateway.
    var client: DeviceClient { get }
    /// Sends the device's messages until its message budget is spent or the task is cancelled.
    func produce(settings: SimSettings) async throws
}

/// Why a simulated device stopped.
enum DeviceEnd: Sendable {
    /// Its message budget was sent and acknowledged.
    case finished
    /// Cancelled (duration over, Ctrl-C, SIGTERM).
    case cancelled
    /// The client stopped for good, e.g. replaced (4000) or token expired (4001).
    case failed(String)
}

extension SimulatedDevice {
    /// Runs the client and the behaviour together; whichever ends first ends the other.
    func run(settings: SimSettings) async -> DeviceEnd {
        await withTaskGroup(of: DeviceEnd?.self) { group in
            group.addTask {
                do {
                    try await self.client.run()
                    return .cancelled
                } catch {
                    return .failed("\(error)")
                }
            }
            if let sleep = settings.sleep {
                group.addTask {
                    // Like a battery device: awake for a while, then asleep; messages wait meanwhile.
                    while (try? await Task.sleep(for: settings.awake)) != nil {
                        self.client.sleep(for: sleep)
                        guard (try? await Task.sleep(for: sleep)) != nil else { break }
                    }
                    return nil
                }
            }
            group.addTask {
                do {
                    try await self.produce(settings: settings)
                    try await self.client.waitUntilAcknowledged()
                    return .finished
                } catch is CancellationError {
                    return nil
                } catch let error as DeviceClientError where error.code == .stopped {
                    // The client stopped under us; its own task reports why.
                    return nil
                } catch {
                    return .failed("\(error)")
                }
            }
            var end: DeviceEnd = .cancelled
            while let result = await group.next() {
                if let result {
                    end = result
                    group.cancelAll()
                    break
                }
            }
            group.cancelAll()
            return end
        }
    }

    /// Sends one telemetry message, acknowledged, without waiting for its answer.
    func sendTelemetry(_ data: JSONObject, settings: SimSettings) async throws {
        let ts = JSONNumber(Int64(Date().timeIntervalSince1970 * 1000))
        _ = try await self.client.enqueue(.telemetry(data: TelemetryData(data), ts: ts, qos: settings.qos))
    }
}

extension JSONValue {
    /// A number rounded to `places` decimals, as a JSON value (finite input assumed).
    static func rounded(_ value: Double, places: Int = 2) -> JSONValue {
        let scale: Double = (0..<places).reduce(1) { result, _ in result * 10 }
        guard let number = JSONNumber((value * scale).rounded() / scale) else { return .null }
        return .number(number)
    }
}
