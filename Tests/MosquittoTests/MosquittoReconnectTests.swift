import Mosquitto
import Synchronization
import Testing

@Suite struct MosquittoReconnectTests {
    @Test func connectToClosedPortThrowsUnreachable() async throws {
        let port = try TestBroker.freePort()
        var options = MQTTClientOptions(clientID: "nobody-home")
        options.port = port
        let client = try MosquittoClient(options: options, logger: quietLogger)
        defer { client.stop() }
        let error = await #expect(throws: MosquittoError.self) { try await client.connect(timeout: .seconds(3)) }
        #expect(error?.code == .unreachable)
        #expect(error?.message.lowercased() == "cannot reach broker at 127.0.0.1:\(port): connection refused")
        #expect(!client.isConnected)
    }

    @Test func connectToUnresolvableHostThrowsUnreachable() async throws {
        let options = try MQTTClientOptions(url: "mqtt://no-such-host.invalid:1883", clientID: "lost")
        let client = try MosquittoClient(options: options, logger: quietLogger)
        defer { client.stop() }
        let error = await #expect(throws: MosquittoError.self) { try await client.connect(timeout: .seconds(3)) }
        #expect(error?.code == .unreachable)
        #expect(error?.message.hasPrefix("cannot reach broker at no-such-host.invalid:1883: cannot resolve host name") == true)
    }

    @Test func startBeforeBrokerExistsConnectsOnceItRuns() async throws {
        let broker = try TestBroker()
        let client = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer { client.stop() }
        let inbox = Inbox(client)
        try client.start()
        // A subscribe issued while disconnected waits and is sent on the first connection.
        let subscribed = Task { try await client.subscribe(["early/#"]) }
        try await Task.sleep(for: .milliseconds(1500))
        #expect(!client.isConnected)

        try await broker.start()
        defer { broker.stop() }
        try await client.waitUntilConnected(timeout: .seconds(10))
        try await subscribed.value
        try await client.publish(topic: "early/x", payload: [7], qos: .atLeastOnce)
        try await inbox.waitFor(count: 1)
    }

    @Test func reconnectsAndResubscribesAfterBrokerRestart() async throws {
        let broker = try await TestBroker.started()
        defer { broker.stop() }
        let client = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer { client.stop() }
        let inbox = Inbox(client)
        try client.start()
        try await client.waitUntilConnected(timeout: .seconds(5))
        try await client.subscribe(["restart/#"])

        broker.kill()
        #expect(try await eventually { !client.isConnected })
        try await broker.start()
        try await client.waitUntilConnected(timeout: .seconds(10))

        // The subscription was renewed on the new broker (which has no memory of it).
        let other = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer { other.stop() }
        try await other.connect()
        try await other.publish(topic: "restart/after", payload: [2], qos: .atLeastOnce)
        let message = try #require(try await inbox.waitFor(count: 1).first)
        #expect(message.topic == "restart/after")
    }

    /// `handle(messages:events:)` across a reconnect: each connection's `.connected` comes before the messages it
    /// brings (here the retained one of the renewed subscription) and its `.disconnected` after, as the gateway's
    /// outbox must hear of a new connection before the retained documents are routed.
    @Test func handlersSeeEachConnectionsEventsAroundItsMessages() async throws {
        let broker = try await TestBroker.started()
        defer { broker.stop() }
        let publisher = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer { publisher.stop() }
        try await publisher.connect()
        try await publisher.publish(topic: "held/x", payload: [1], qos: .atLeastOnce, retain: true)
        let options = try testOptions(broker)
        let client = try MosquittoClient(options: options, logger: quietLogger)
        defer { client.stop() }
        let seen = Mutex<[String]>([])
        client.handle(
            messages: { message in seen.withLock { $0.append(message.topic) } },
            events: { event in
                let name = if case .connected = event { "connected" } else { "disconnected" }
                seen.withLock { $0.append(name) }
            })
        try client.start()
        try await client.waitUntilConnected(timeout: .seconds(5))
        try await client.subscribe(["held/#"])
        #expect(try await eventually { seen.withLock { $0 } == ["connected", "held/x"] })
        // A client with the same id takes the session over and leaves at once; ours reconnects after its reconnect
        // delay (at least a second), renews the subscription and gets the retained message again.
        // The usurper does not come back within the test: stopped late (this task can wait past our client's reconnect
        // delay when the suite runs in parallel), it was taken over by our reconnect and took our session over again.
        var usurping = options
        usurping.reconnect = MQTTReconnectPolicy(minimumDelay: .seconds(60), maximumDelay: .seconds(60))
        let usurper = try MosquittoClient(options: usurping, logger: quietLogger)
        try await usurper.connect()
        usurper.stop()
        #expect(try await eventually(timeout: .seconds(10)) { seen.withLock { $0.count } >= 5 })
        #expect(seen.withLock { $0 } == ["connected", "held/x", "disconnected", "connected", "held/x"])
    }

    /// The network thread waits out the reconnect delay, but not when the client stops meanwhile.
    @Test func stopWhileWaitingToReconnectDoesNotWaitOutTheDelay() async throws {
        let broker = try await TestBroker.started()
        defer { broker.stop() }
        var options = try testOptions(broker)
        options.reconnect = MQTTReconnectPolicy(minimumDelay: .seconds(120), maximumDelay: .seconds(120), jitter: 0)
        let client = try MosquittoClient(options: options, logger: quietLogger)
        try client.start()
        try await client.waitUntilConnected(timeout: .seconds(5))
        broker.kill()
        #expect(try await eventually { !client.isConnected })
        let elapsed = ContinuousClock().measure { client.stop() }
        #expect(elapsed < .seconds(60))
    }

    /// A stop while the connection is still being set up (the host answers no SYN) returns at once: nothing was
    /// accepted, so there is no DISCONNECT to write, and the SYN retries could last minutes.
    @Test func stopWhileConnectingToASilentHostReturnsPromptly() async throws {
        let silent = try UnansweredPort()
        var options = MQTTClientOptions(clientID: "silent-\(UInt32.random(in: 0...UInt32.max))")
        options.port = silent.port
        let client = try MosquittoClient(options: options, logger: quietLogger)
        try client.start()
        try await Task.sleep(for: .milliseconds(300))
        #expect(!client.isConnected)
        let elapsed = ContinuousClock().measure { client.stop() }
        #expect(elapsed < .seconds(5))
    }

    /// Each publish wakes a sleeping network thread; while it waits to reconnect that must not cut the wait short,
    /// or a gateway with busy devices would hammer a broker that just went away.
    @Test func publishingDuringAnOutageDoesNotHurryTheReconnects() async throws {
        let broker = try ProtocolBreakingBroker(hangsUpAfterConnack: true)
        defer { broker.close() }
        var options = try MQTTClientOptions(url: broker.url, clientID: "outage-\(UInt32.random(in: 0...UInt32.max))")
        options.reconnect = MQTTReconnectPolicy(minimumDelay: .milliseconds(500), maximumDelay: .milliseconds(500), jitter: 0)
        let client = try MosquittoClient(options: options, logger: quietLogger)
        defer { client.stop() }
        try client.start()
        #expect(try await eventually { broker.connections >= 1 })
        let before = broker.connections
        let clock = ContinuousClock()
        let start = clock.now
        while clock.now - start < .seconds(2) {
            _ = try? client.publish(topic: "outage/x", payload: [1], qos: .atLeastOnce) { _ in }
            try await Task.sleep(for: .milliseconds(2))
        }
        // One attempt per 500 ms wait at most (4 in 2 s), not one per publish.
        #expect(broker.connections - before <= 6)
    }

    @Test func connectionEventsReportConnectAndDisconnect() async throws {
        let broker = try await TestBroker.started()
        let client = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        try await client.connect()
        broker.stop()
        #expect(try await eventually { !client.isConnected })
        client.stop()
        var events: [MQTTConnectionEvent] = []
        for await event in client.connectionEvents { events.append(event) }
        // mosquitto's default `max_inflight_messages`, 20, is its CONNACK's Receive Maximum.
        guard case .connected(sessionPresent: false, inflightLimit: 20) = events.first else {
            Issue.record("expected .connected first, got \(events)")
            return
        }
        guard case .disconnected = events.dropFirst().first else {
            Issue.record("expected .disconnected second, got \(events)")
            return
        }
    }

    /// libmosquitto takes a CONNACK's Receive Maximum as its limit on unanswered publishes; a CONNACK without one
    /// (mosquitto sends none with `max_inflight_messages 0`, no limit) leaves `maxInflight`, since every connection
    /// starts a fresh session: the event says what it applies.
    @Test func connectedEventCarriesLibmosquittosInflightLimit() async throws {
        let limited = try await TestBroker.started(extraConfig: "max_inflight_messages 7")
        let client = try clientAllowing300(limited)
        try await client.connect()
        limited.stop()
        #expect(try await eventually { !client.isConnected })
        let unlimited = try TestBroker(extraConfig: "max_inflight_messages 0", port: limited.port)
        try await unlimited.start()
        #expect(try await eventually(timeout: .seconds(10)) { client.isConnected })
        #expect(await inflightLimits(client, stopping: unlimited) == [7, 300])

        let fresh = try await TestBroker.started(extraConfig: "max_inflight_messages 0")
        let second = try clientAllowing300(fresh)
        try await second.connect()
        #expect(await inflightLimits(second, stopping: fresh) == [300])
    }

    private func clientAllowing300(_ broker: TestBroker) throws -> MosquittoClient {
        var options = try testOptions(broker)
        options.maxInflight = 300
        return try MosquittoClient(options: options, logger: quietLogger)
    }

    /// Stops `client` and `broker`; the limits its `.connected` events carried.
    private func inflightLimits(_ client: MosquittoClient, stopping broker: TestBroker) async -> [Int] {
        client.stop()
        broker.stop()
        var limits: [Int] = []
        for await event in client.connectionEvents {
            if case .connected(_, let limit) = event { limits.append(limit) }
        }
        return limits
    }

    @Test func stopFailsWaitingCallsAndReturnsPromptlyWhileBrokerIsDown() async throws {
        let broker = try TestBroker()
        let client = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        try client.start()
        let publish = Task { try await client.publish(topic: "never", payload: [1], qos: .atLeastOnce) }
        let subscribe = Task { try await client.subscribe(["never/#"]) }
        try await Task.sleep(for: .milliseconds(200))
        let start = ContinuousClock.now
        client.stop()
        #expect(ContinuousClock.now - start < .seconds(2))
        await #expect(throws: MosquittoError.self) { try await publish.value }
        await #expect(throws: MosquittoError.self) { try await subscribe.value }
        let afterStop = await #expect(throws: MosquittoError.self) {
            try await client.publish(topic: "never", payload: [1], qos: .atLeastOnce)
        }
        #expect(afterStop?.code == .closed)
        #expect(throws: MosquittoError.self) { try client.start() }
    }
}

@Suite struct MosquittoRefusalTests {
    @Test func startKeepsRetryingAfterTheBrokerRefuses() async throws {
        let broker = try await TestBroker.started(anonymous: false)
        let client = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        try client.start()
        try await Task.sleep(for: .milliseconds(2500))
        client.stop()
        var refusals = 0
        for await event in client.connectionEvents {
            if case .disconnected(let reason) = event, reason.contains("not authorized") { refusals += 1 }
        }
        #expect(refusals >= 2)
    }
}
