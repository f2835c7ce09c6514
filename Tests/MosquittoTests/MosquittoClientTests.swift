import Mosquitto
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct MosquittoClientTests {
    @Test func qos1PublishRoundTripsAllProperties() async throws {
        let broker = try await TestBroker.started()
        let subscriber = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        let publisher = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer {
            subscriber.stop()
            publisher.stop()
        }
        let inbox = Inbox(subscriber)
        try await subscriber.connect()
        try await publisher.connect()
        #expect(subscriber.isConnected)
        try await subscriber.subscribe(["props/#"])

        let properties = MQTTProperties(
            responseTopic: "reply/here",
            correlationData: [0, 1, 2, 0xFF],
            messageExpiryInterval: 60,
            contentType: "application/json",
            userProperties: [.init(name: "a", value: "1"), .init(name: "a", value: "2"), .init(name: "b", value: "")]
        )
        try await publisher.publish(topic: "props/x", payload: "{}".bytes, qos: .atLeastOnce, properties: properties)

        let message = try #require(try await inbox.waitFor(count: 1).first)
        #expect(message.topic == "props/x")
        #expect(message.payload == "{}".bytes)
        #expect(message.qos == .atLeastOnce)
        #expect(!message.retain)
        #expect(message.properties.responseTopic == "reply/here")
        #expect(message.properties.correlationData == [0, 1, 2, 0xFF])
        #expect((59...60).contains(message.properties.messageExpiryInterval ?? 0))
        #expect(message.properties.contentType == "application/json")
        #expect(message.properties.userProperties == properties.userProperties)
    }

    /// `handle(messages:events:)`: every message reaches the handler on the network thread, in order, after the
    /// connection's `.connected`; nothing reaches the streams; and the handler may publish (as the gateway's router
    /// answers requests from there).
    @Test func handlersTakeMessagesAndEventsOnTheNetworkThreadInOrder() async throws {
        let broker = try await TestBroker.started()
        let client = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        let publisher = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer {
            client.stop()
            publisher.stop()
        }
        let taken = Mutex<[(topic: String, thread: String)]>([])
        client.handle(
            messages: { message in
                taken.withLock { $0.append((message.topic, currentThreadName())) }
                if message.topic.hasPrefix("in/") {
                    try? client.publish(topic: "out/" + message.topic.dropFirst(3), payload: message.payload, qos: .atLeastOnce) { _ in }
                }
            },
            events: { event in
                if case .connected = event { taken.withLock { $0.append(("connected", currentThreadName())) } }
            })
        let streamed = Inbox(client)
        try await client.connect()
        try await publisher.connect()
        try await client.subscribe(["in/#", "out/#"])
        for index in 0..<50 {
            try await publisher.publish(topic: "in/\(index)", payload: [UInt8(index)], qos: .atLeastOnce)
        }
        #expect(try await eventually { taken.withLock { $0.count } == 101 })
        let all = taken.withLock { $0 }
        #expect(all.first?.topic == "connected")
        #expect(all.filter { $0.topic.hasPrefix("in/") }.map(\.topic) == (0..<50).map { "in/\($0)" })
        #expect(all.filter { $0.topic.hasPrefix("out/") }.map(\.topic) == (0..<50).map { "out/\($0)" })
        #expect(Set(all.map(\.thread)) == ["mqtt network"])
        #expect(streamed.messages.isEmpty)
    }

    @Test func qos0PublishAndEmptyPayload() async throws {
        let broker = try await TestBroker.started()
        let client = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer { client.stop() }
        let inbox = Inbox(client)
        try await client.connect()
        try await client.subscribe(["q0/#"], qos: .atMostOnce)
        try await client.publish(topic: "q0/a", payload: [], qos: .atMostOnce)
        let message = try #require(try await inbox.waitFor(count: 1).first)
        #expect(message.payload.isEmpty)
        #expect(message.qos == .atMostOnce)
        #expect(message.properties == MQTTProperties())
    }

    @Test func retainedMessageReachesLateSubscriber() async throws {
        let broker = try await TestBroker.started()
        let publisher = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        let subscriber = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer {
            publisher.stop()
            subscriber.stop()
        }
        try await publisher.connect()
        try await publisher.publish(topic: "state/dev1", payload: "online".bytes, qos: .atLeastOnce, retain: true)

        let inbox = Inbox(subscriber)
        try await subscriber.connect()
        try await subscriber.subscribe(["state/+"])
        let message = try #require(try await inbox.waitFor(count: 1).first)
        #expect(message.topic == "state/dev1")
        #expect(message.payload == "online".bytes)
        #expect(message.retain)
    }

    @Test func sharedSubscriptionSplitsMessages() async throws {
        let broker = try await TestBroker.started()
        let first = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        let second = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        let publisher = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer {
            first.stop()
            second.stop()
            publisher.stop()
        }
        let firstInbox = Inbox(first)
        let secondInbox = Inbox(second)
        for client in [first, second, publisher] { try await client.connect() }
        try await first.subscribe(["$share/workers/jobs/#"])
        try await second.subscribe(["$share/workers/jobs/#"])

        for index in 0..<20 {
            try await publisher.publish(topic: "jobs/\(index)", payload: [UInt8(index)], qos: .atLeastOnce)
        }
        #expect(try await eventually { firstInbox.messages.count + secondInbox.messages.count >= 20 })
        try await Task.sleep(for: .milliseconds(100))
        #expect(firstInbox.messages.count + secondInbox.messages.count == 20)
        #expect(!firstInbox.messages.isEmpty)
        #expect(!secondInbox.messages.isEmpty)
    }

    @Test func unsubscribeStopsDelivery() async throws {
        let broker = try await TestBroker.started()
        let client = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer { client.stop() }
        let inbox = Inbox(client)
        try await client.connect()
        try await client.subscribe(["u/a", "u/b"])
        try await client.publish(topic: "u/a", payload: [1], qos: .atLeastOnce)
        try await inbox.waitFor(count: 1)

        try await client.unsubscribe(["u/a"])
        try await client.publish(topic: "u/a", payload: [2], qos: .atLeastOnce)
        try await client.publish(topic: "u/b", payload: [3], qos: .atLeastOnce)
        let messages = try await inbox.waitFor(count: 2)
        try await Task.sleep(for: .milliseconds(100))
        #expect(inbox.messages.map(\.payload) == [[1], [3]])
        #expect(messages.map(\.topic) == ["u/a", "u/b"])
    }

    @Test func publishDeniedByACLIsRejected() async throws {
        let broker = try await TestBroker.started(acl: "topic readwrite allowed/#\n")
        let client = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer { client.stop() }
        try await client.connect()

        try await client.publish(topic: "allowed/x", payload: [1], qos: .atLeastOnce)
        let error = await #expect(throws: MosquittoError.self) {
            try await client.publish(topic: "denied/x", payload: [1], qos: .atLeastOnce)
        }
        #expect(error?.code == .publishRejected)
        #expect(error?.reasonCode == .notAuthorized)
        #expect(error?.resultCode == nil)
        #expect(error?.isPermanentRejection == true)
        #expect(error?.message == "broker refused publish to denied/x: not authorized (0x87)")
        // mosquitto 2.0 grants SUBSCRIBEs its ACL denies (it filters deliveries instead), so `.subscribeRejected`
        // cannot be provoked this way.
    }

    /// A QoS 1 publish whose connection ends before the PUBACK fails with `.connectionLost` and is not sent again:
    /// libmosquitto sent a session's unanswered publishes first thing on the next connection, so a broker that closes
    /// the connection on a message it refuses, before its refusal leaves (mosquitto 2.0 may), was sent it on every
    /// connection and closed each, for good. The next connection stays up and carries what follows.
    @Test func aPublishTheBrokerClosesTheConnectionOnFailsAndIsNotSentAgain() async throws {
        let broker = try ProtocolBreakingBroker(.closesOnPublish)
        defer { broker.close() }
        var options = try MQTTClientOptions(url: broker.url, clientID: "closed-on-\(UInt32.random(in: 0...UInt32.max))")
        options.reconnect = MQTTReconnectPolicy(minimumDelay: .milliseconds(100), maximumDelay: .milliseconds(100), jitter: 0)
        let client = try MosquittoClient(options: options, logger: quietLogger)
        defer { client.stop() }
        try await client.connect()
        let error = await #expect(throws: MosquittoError.self) {
            try await client.publish(topic: "refused/x", payload: [1], qos: .atLeastOnce)
        }
        #expect(error?.code == .connectionLost)
        #expect(try await eventually { broker.connections == 2 && client.isConnected })
        // Five reconnect delays: nothing was sent on the new connection, which the broker therefore keeps.
        try await Task.sleep(for: .milliseconds(500))
        #expect(broker.publishes == 1 && broker.connections == 2)
    }

    /// A broker that holds its PUBACKs back (Nagle's algorithm, until the client's TCP acknowledgement) while the
    /// network thread waits for several at once (``PubackCoalescing``): the wait runs out and the one PUBACK that came
    /// is read. Five publishes owed, the socket's mark asks for two PUBACKs; a mark that stayed up would hold the
    /// first publish's answer for good, and a wait not bounded by the coalescing's patience (1 ms at most) would hold it for
    /// the loop's idle second.
    @Test func aPubackAloneWhileOthersAreHeldBackIsReadAfterAShortWait() async throws {
        let broker = try ProtocolBreakingBroker(.answersOnlyTheFirstPublish)
        defer { broker.close() }
        let client = try await connectedClient(of: broker, named: "held")
        defer { client.stop() }
        let answered = Mutex<[Int: (error: MosquittoError?, at: ContinuousClock.Instant)]>([:])
        for index in 0..<ProtocolBreakingBroker.heldPublishes {
            try client.publish(topic: "held/\(index)", payload: [UInt8(index)], qos: .atLeastOnce) { error in
                answered.withLock { $0[index] = (error, .now) }
            }
        }
        let published = ContinuousClock.now
        #expect(try await eventually { answered.withLock { $0[0] != nil } })
        #expect(answered.withLock { $0.count == 1 && $0[0]?.error == nil })
        #expect(answered.withLock { $0[0]!.at - published } < .milliseconds(500))
        #expect(broker.publishes == ProtocolBreakingBroker.heldPublishes)
    }

    /// A client of `broker` (a ``ProtocolBreakingBroker``), connected; `configure` adjusts its options first.
    private func connectedClient(
        of broker: ProtocolBreakingBroker, named name: String, _ configure: (inout MQTTClientOptions) -> Void = { _ in }
    ) async throws -> MosquittoClient {
        var options = try MQTTClientOptions(url: broker.url, clientID: "\(name)-\(UInt32.random(in: 0...UInt32.max))")
        configure(&options)
        let client = try MosquittoClient(options: options, logger: quietLogger)
        try await client.connect()
        return client
    }

    /// libmosquitto numbers QoS 0 and QoS 1 publishes from one 16-bit counter, and reports a QoS 0 publish as written
    /// through the callback that reports PUBACKs: 65,535 publishes after a QoS 1 one still waiting for its PUBACK, a
    /// QoS 0 one has its id. That one's being written is no PUBACK: the QoS 1 publish is not answered by it.
    @Test func aQoS0PublishWithTheIdOfAnUnansweredQoS1OneDoesNotAnswerIt() async throws {
        let broker = try ProtocolBreakingBroker(.neverAcknowledges)
        defer { broker.close() }
        let client = try await connectedClient(of: broker, named: "wrap")
        defer { client.stop() }
        let answered = Mutex<[MosquittoError?]>([])
        try client.publish(topic: "wrap/1", payload: [1], qos: .atLeastOnce) { error in answered.withLock { $0.append(error) } }
        for index in 0..<65_535 {
            try client.publish(topic: "wrap/0", payload: [UInt8(truncatingIfNeeded: index)], qos: .atMostOnce) { _ in }
        }
        // The broker has read them all, so all were written (the callback runs as libmosquitto writes one).
        #expect(try await eventually(timeout: .seconds(20)) { broker.publishes == 65_536 })
        #expect(answered.withLock { $0.isEmpty })
    }

    /// 65,535 publishes after a QoS 1 one still waiting for its PUBACK, libmosquitto gives a QoS 1 one the same id
    /// (the broker answers both, and libmosquitto matches its PUBACKs to them oldest first). Each gets its one answer:
    /// here, when the client stops before the broker answered either.
    @Test func twoUnansweredQoS1PublishesWithOneIdAreEachAnsweredOnce() async throws {
        let broker = try ProtocolBreakingBroker(.neverAcknowledges)
        defer { broker.close() }
        let client = try await connectedClient(of: broker, named: "reuse")
        let answered = Mutex<[String: [MosquittoError?]]>([:])
        let record: @Sendable (String) -> @Sendable (MosquittoError?) -> Void = { key in { error in answered.withLock { $0[key, default: []].append(error) } } }
        try client.publish(topic: "reuse/first", payload: [1], qos: .atLeastOnce, completion: record("first"))
        for index in 0..<65_534 {
            try client.publish(topic: "reuse/0", payload: [UInt8(truncatingIfNeeded: index)], qos: .atMostOnce) { _ in }
        }
        try client.publish(topic: "reuse/second", payload: [2], qos: .atLeastOnce, completion: record("second"))
        #expect(try await eventually(timeout: .seconds(20)) { broker.publishes == 65_536 })
        client.stop()
        #expect(try await eventually { answered.withLock { $0.count == 2 } })
        #expect(answered.withLock { $0["first"]?.count == 1 && $0["second"]?.count == 1 })
    }

    /// Publishes 64 KiB QoS 0 messages (at most 2,000) until the client has no room, and again after a pause for as long
    /// as the socket still took some meanwhile: the client's queue can look full before the network thread has
    /// written what the socket's buffers would take (which a test that then waits saw drain, and the room come back).
    /// Returns how many it published.
    private func fillQueueOfUnwritten(_ client: MosquittoClient) async throws -> Int {
        let payload = [UInt8](repeating: 0x61, count: 65_536)
        var published = 0
        repeat {
            while client.hasRoomForAtMostOnce, published < 2_000 {
                try client.publish(topic: "fill", payload: payload, qos: .atMostOnce) { _ in }
                published += 1
                if published % 16 == 0 { try await Task.sleep(for: .milliseconds(5)) }  // the network thread writes
            }
            try await Task.sleep(for: .milliseconds(100))
        } while client.hasRoomForAtMostOnce && published < 2_000
        return published
    }

    /// Which limit of the client's queue of unwritten QoS 0 publishes a test sets low.
    enum QueueLimit: CaseIterable, Sendable {
        /// `maxQueuedAtMostOnce`: 16.
        case count
        /// `maxQueuedAtMostOnceBytes`: 1 MiB (2,000 frames of 64 KiB are far fewer than the 4,096 allowed, but 125 MiB).
        case bytes

        func apply(to options: inout MQTTClientOptions) {
            switch self {
            case .count: options.maxQueuedAtMostOnce = 16
            case .bytes: options.maxQueuedAtMostOnceBytes = 1 << 20
            }
        }
    }

    /// libmosquitto queues QoS 0 publishes without limit: while the broker reads nothing, the client says it has no
    /// room once as many publishes, or as many bytes of large ones, as allowed wait unwritten (beyond what the socket
    /// took), and calls the hook once the broker has read them.
    @Test(arguments: QueueLimit.allCases)
    func theQueueOfUnwrittenQoS0PublishesSaysWhenItIsFullAndWhenItHasRoomAgain(_ limit: QueueLimit) async throws {
        let broker = try ProtocolBreakingBroker(.readsWhenTold)
        defer { broker.close() }
        let client = try await connectedClient(of: broker, named: "stall", limit.apply)
        defer { client.stop() }
        let roomMade = Mutex(0)
        client.onRoomForAtMostOnce { roomMade.withLock { $0 += 1 } }
        let published = try await fillQueueOfUnwritten(client)
        #expect(!client.hasRoomForAtMostOnce && published < 2_000)
        client.wantRoomForAtMostOnce()
        try await Task.sleep(for: .milliseconds(200))
        #expect(roomMade.withLock { $0 } == 0 && !client.hasRoomForAtMostOnce)
        broker.startReading()
        #expect(try await eventually(timeout: .seconds(20)) { broker.publishes == published })
        #expect(roomMade.withLock { $0 } == 1 && client.hasRoomForAtMostOnce)
    }

    /// A wish for room outlives the connection: the fresh session of the next one drops libmosquitto's queue, and the
    /// hook runs then.
    @Test func aFreshSessionEmptiesTheQueueOfUnwrittenQoS0PublishesAndMakesRoom() async throws {
        let broker = try ProtocolBreakingBroker(.readsWhenTold)
        defer { broker.close() }
        let client = try await connectedClient(of: broker, named: "drop") { options in
            options.maxQueuedAtMostOnce = 16
            options.reconnect = MQTTReconnectPolicy(minimumDelay: .milliseconds(50), maximumDelay: .milliseconds(50), jitter: 0)
        }
        defer { client.stop() }
        let roomMade = Mutex(0)
        client.onRoomForAtMostOnce { roomMade.withLock { $0 += 1 } }
        _ = try await fillQueueOfUnwritten(client)
        #expect(!client.hasRoomForAtMostOnce)
        client.wantRoomForAtMostOnce()
        #expect(roomMade.withLock { $0 } == 0)
        broker.hangUp()
        #expect(try await eventually(timeout: .seconds(10)) { roomMade.withLock { $0 } == 1 })
        #expect(client.hasRoomForAtMostOnce)
    }

    /// With mosquitto itself (2.0.11 closes the connection of a client whose publish it refuses, for its ACL or its
    /// `message_size_limit`, when `max_queued_messages` is 0): the publishes answered, refused or with their connection,
    /// and the next connection stays up and carries the next one.
    @Test func aPublishMosquittoDeniesAndClosesTheConnectionOnLeavesTheNextConnectionUp() async throws {
        let broker = try await TestBroker.started(extraConfig: "max_queued_messages 0", acl: "topic readwrite #\ntopic deny denied/#\n")
        var options = try testOptions(broker)
        options.reconnect = MQTTReconnectPolicy(minimumDelay: .milliseconds(100), maximumDelay: .milliseconds(100), jitter: 0)
        let client = try MosquittoClient(options: options, logger: quietLogger)
        defer { client.stop() }
        let connections = Mutex(0)
        client.handle(messages: { _ in }, events: { event in
            if case .connected = event { connections.withLock { $0 += 1 } }
        })
        try await client.connect()
        let answers = Mutex<[MosquittoError.Code?]>([])
        let record: @Sendable (MosquittoError?) -> Void = { error in answers.withLock { $0.append(error?.code) } }
        for topic in ["denied/x"] + (0..<20).map({ "allowed/\($0)" }) {
            do {
                try client.publish(topic: topic, payload: [1], qos: .atLeastOnce, completion: record)
            } catch let error as MosquittoError {
                record(error)  // the connection closed already
            }
        }
        #expect(try await eventually { answers.withLock { $0.count } == 21 })
        #expect(answers.withLock { $0.allSatisfy { [nil, .publishRejected, .connectionLost, .notConnected].contains($0) } })
        try await client.waitUntilConnected(timeout: .seconds(5))
        try await Task.sleep(for: .milliseconds(500))
        #expect(connections.withLock { $0 } == 2)
        try await client.publish(topic: "allowed/after", payload: [3], qos: .atLeastOnce)
    }

    /// A `connect()` that timed out leaves no session behind: a publish then fails at once instead of waiting for a
    /// connection nobody serves.
    @Test func aPublishAfterAConnectThatTimedOutFailsAtOnce() async throws {
        let broker = try ProtocolBreakingBroker(.neverAnswers)
        defer { broker.close() }
        let client = try MosquittoClient(options: MQTTClientOptions(url: broker.url, clientID: "silent-\(UInt32.random(in: 0...UInt32.max))"), logger: quietLogger)
        defer { client.stop() }
        let timedOut = await #expect(throws: MosquittoError.self) { try await client.connect(timeout: .milliseconds(300)) }
        #expect(timedOut?.code == .timeout)
        let publish = #expect(throws: MosquittoError.self) {
            try client.publish(topic: "after/x", payload: [1], qos: .atLeastOnce) { _ in }
        }
        #expect(publish?.code == .notConnected)
    }

    /// A QoS 1 publish is answered on its connection: while there is none, it fails at once, and a connection that ends
    /// before the PUBACK fails it with `.connectionLost` (this one never answers: the broker is stopped first).
    @Test func aPublishWithoutItsConnectionFails() async throws {
        let broker = try await TestBroker.started()
        let client = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer { client.stop() }
        let early = #expect(throws: MosquittoError.self) {
            try client.publish(topic: "early/x", payload: [1], qos: .atLeastOnce) { _ in }
        }
        #expect(early?.code == .notConnected)
        try await client.connect()
        broker.kill()
        #expect(try await eventually { !client.isConnected })
        let outage = await #expect(throws: MosquittoError.self) {
            try await client.publish(topic: "outage/x", payload: [1], qos: .atLeastOnce)
        }
        #expect(outage?.code == .notConnected)
    }

    /// A PUBACK's completion runs on the network thread; what it hands to `AfterPass` runs at the end of that pass,
    /// while the client keeps running (not only when its thread ends). Published from the connected event, on the
    /// network thread, so that the PUBACK cannot arrive before `publish` has registered the completion (which then
    /// runs on the caller's thread).
    @Test func workACompletionHandsOnRunsAtTheEndOfItsPass() async throws {
        let broker = try await TestBroker.started()
        let client = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer { client.stop() }
        let seen = Mutex<(onNetworkThread: Bool, ran: Bool)>((false, false))
        client.handle(messages: { _ in }, events: { [unowned client] event in
            guard case .connected = event else { return }
            try? client.publish(topic: "after/x", payload: [1], qos: .atLeastOnce) { _ in
                seen.withLock { $0.onNetworkThread = AfterPass.isNetworkThread }
                AfterPass.run { seen.withLock { $0.ran = true } }
            }
        })
        try await client.connect()
        #expect(try await eventually { seen.withLock { $0.ran } })
        #expect(seen.withLock { $0.onNetworkThread })
    }

    @Test func anonymousClientRefusedWhenBrokerRequiresLogin() async throws {
        let broker = try await TestBroker.started(anonymous: false)
        let client = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer { client.stop() }
        let error = await #expect(throws: MosquittoError.self) { try await client.connect() }
        #expect(error?.code == .connectionRefused)
        #expect(error?.message.hasPrefix("broker at 127.0.0.1:\(broker.port) refused the connection: not authorized") == true)
    }

    @Test func willIsPublishedWhenClientGoesAwayUncleanly() async throws {
        let broker = try await TestBroker.started()
        var options = try testOptions(broker)
        options.will = MQTTWill(topic: "status/gw", payload: "offline".bytes)
        let client = try MosquittoClient(options: options, logger: quietLogger)
        let watcher = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer { watcher.stop() }
        let inbox = Inbox(watcher)
        try await watcher.connect()
        try await watcher.subscribe(["status/#"])
        try await client.connect()

        client.stop(publishingWill: true)
        let message = try #require(try await inbox.waitFor(count: 1).first)
        #expect(message.topic == "status/gw")
        #expect(message.payload == "offline".bytes)

        // The will is retained by default, so a late subscriber still learns the gateway is gone.
        let late = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer { late.stop() }
        let lateInbox = Inbox(late)
        try await late.connect()
        try await late.subscribe(["status/gw"])
        let retained = try #require(try await lateInbox.waitFor(count: 1).first)
        #expect(retained.retain)
        #expect(retained.payload == "offline".bytes)
    }

    @Test func cleanStopDoesNotPublishWill() async throws {
        let broker = try await TestBroker.started()
        var options = try testOptions(broker)
        options.will = MQTTWill(topic: "status/gw", payload: "offline".bytes)
        let client = try MosquittoClient(options: options, logger: quietLogger)
        let watcher = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer { watcher.stop() }
        let inbox = Inbox(watcher)
        try await watcher.connect()
        try await watcher.subscribe(["status/#"])
        try await client.connect()
        client.stop()
        client.stop()  // idempotent
        try await Task.sleep(for: .milliseconds(300))
        #expect(inbox.messages.isEmpty)
    }

    /// Publishes behind a window of 3, which do not wake the network thread (``ClientCore/registerPublish(mid:waiter:)``),
    /// all go out as PUBACKs make room, on the first connection and on the next (this checks that they are answered,
    /// not that no wake-up happened).
    @Test func publishesBehindASmallWindowGoOutAsPubacksMakeRoom() async throws {
        let broker = try await TestBroker.started(extraConfig: "max_inflight_messages 3")
        var options = try testOptions(broker)
        options.reconnect = MQTTReconnectPolicy(minimumDelay: .milliseconds(100), maximumDelay: .milliseconds(100), jitter: 0)
        let client = try MosquittoClient(options: options, logger: quietLogger)
        defer { client.stop() }
        try await client.connect()
        /// Publishes 100 from this thread at once (one PublishBatch, as a device's loop does); whether all were answered.
        func publishAll(_ round: Int) async throws -> Bool {
            let answered = Mutex<[MosquittoError?]>([])
            try PublishBatch.run {
                for index in 0..<100 {
                    try client.publish(topic: "window/\(round)", payload: [UInt8(index)], qos: .atLeastOnce) { error in
                        answered.withLock { $0.append(error) }
                    }
                }
            }
            return try await eventually(timeout: .seconds(10)) { answered.withLock { $0.count == 100 } }
                && answered.withLock { $0.allSatisfy { $0 == nil } }
        }
        #expect(try await publishAll(1))
        broker.stop()
        #expect(try await eventually { !client.isConnected })
        let again = try TestBroker(extraConfig: "max_inflight_messages 3", port: broker.port)
        try await again.start()
        defer { again.stop() }
        #expect(try await eventually(timeout: .seconds(10)) { client.isConnected })
        #expect(try await publishAll(2))
    }

    @Test func tenThousandConcurrentQoS1PublishesComplete() async throws {
        let broker = try await TestBroker.started()
        let client = try MosquittoClient(options: testOptions(broker), logger: quietLogger)
        defer { client.stop() }
        try await client.connect()
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<10_000 {
                group.addTask {
                    try await client.publish(topic: "load/\(index % 10)", payload: [UInt8(index & 0xFF)], qos: .atLeastOnce)
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed < .seconds(20))
        // Mixed QoS 0 and QoS 1 under concurrency must not confuse "sent" notifications with PUBACKs.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<2_000 {
                group.addTask {
                    try await client.publish(topic: "mixed", payload: [], qos: index.isMultiple(of: 2) ? .atMostOnce : .atLeastOnce)
                }
            }
            try await group.waitForAll()
        }
    }
}

/// The calling thread's name, as the kernel has it.
private func currentThreadName() -> String {
    let file = open("/proc/thread-self/comm", O_RDONLY)
    defer { close(file) }
    var bytes = [UInt8](repeating: 0, count: 32)
    let count = read(file, &bytes, bytes.count)
    return String(decoding: bytes.prefix(max(count, 0)).filter { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
}
