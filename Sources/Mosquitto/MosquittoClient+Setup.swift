import CMosquitto
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension MosquittoClient {
    /// Applies the options to a fresh handle; libmosquitto copies every string it keeps.
    static func configure(_ handle: OpaquePointer, options: MQTTClientOptions) throws {
        func check(_ rc: MosquittoResultCode, _ what: @autoclosure () -> String) throws {
            guard rc == .success else { throw MosquittoError(rc: rc, context: what()) }
        }
        func check(_ rc: Int32, _ what: @autoclosure () -> String) throws {
            try check(MosquittoResultCode(rc), what())
        }
        try check(
            mosquitto_int_option(handle, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5),
            "cannot select MQTT 5"
        )
        // Commands and acks are small and latency-sensitive; don't let Nagle hold them back.
        try check(mosquitto_int_option(handle, MOSQ_OPT_TCP_NODELAY, 1), "cannot set TCP_NODELAY")
        try check(
            mosquitto_int_option(handle, MOSQ_OPT_SEND_MAXIMUM, Int32(options.sendMaximum)),
            "invalid maxInflight \(options.maxInflight)"
        )
        if options.username != nil || options.password != nil {
            try check(
                mosquitto_username_pw_set(handle, options.username ?? "", options.password),
                "cannot set the MQTT credentials"
            )
        }
        if let tls = options.tls {
            if tls.caFile == nil, tls.caPath == nil {
                try check(mosquitto_int_option(handle, MOSQ_OPT_TLS_USE_OS_CERTS, 1), "cannot use the OS trust store")
            } else {
                try check(
                    mosquitto_tls_set(handle, tls.caFile, tls.caPath, tls.certFile, tls.keyFile, nil),
                    "cannot set up TLS (check that caFile/caPath/certFile/keyFile exist and are readable)"
                )
            }
            if tls.insecure {
                try check(mosquitto_tls_insecure_set(handle, true), "cannot disable the TLS host name check")
            }
        }
        if let will = options.will {
            try check(
                will.payload.withUnsafeBytes { bytes in
                    mosquitto_will_set_v5(
                        handle, will.topic, Int32(clamping: bytes.count), bytes.baseAddress, will.qos.rawValue, will.retain, nil
                    )
                },
                "invalid will on topic \(will.topic)"
            )
        }
    }

    /// Empties the handle before a connection attempt: the publishes of the session that ended are failed with
    /// `.connectionLost`, and libmosquitto forgets them. It would otherwise send its unanswered QoS 1 publishes again first
    /// thing on the next connection, and a broker that closes the connection on a message it refuses (mosquitto 2.0.11 does,
    /// with `max_queued_messages 0`) would be sent that message again on every reconnect, keeping the link down for good.
    /// The retries are the caller's (the gateway's spool). `mosquitto_reinitialise` frees and re-creates everything in the
    /// handle, so it runs with the handle alone (``SessionLock``), and the options and callbacks are applied again.
    /// Returns why the handle cannot be set up again (a TLS file gone since the start), nil on success.
    static func startFreshSession(_ handle: OpaquePointer, core: ClientCore) -> MosquittoError? {
        let options = core.options
        let (waiters, failure) = core.session.exclusively { () -> ([ClientCore.PublishWaiter], MosquittoError?) in
            core.sessionConnecting.store(false, ordering: .relaxed)
            let waiters = core.takeSessionPublishes()
            core.forgetUnwrittenAtMostOnce()
            // Without a socket pair, like the first session (`SocketBuffers.withoutSocketPairs`).
            let rc = SocketBuffers.withoutSocketPairs {
                MosquittoResultCode(
                    mosquitto_reinitialise(
                        handle, options.clientID.isEmpty ? nil : options.clientID, options.cleanStart,
                        Unmanaged.passUnretained(core).toOpaque()))
            }
            guard rc == .success else { return (waiters, MosquittoError(rc: rc, context: "cannot start a new MQTT session")) }
            do {
                try configure(handle, options: options)
            } catch {
                return (waiters, error as? MosquittoError ?? MosquittoError(code: .other, message: "\(error)"))
            }
            installCallbacks(handle)
            mosquitto_threaded_set(handle, true)
            return (waiters, nil)
        }
        let lost = core.connectionLostError
        for waiter in waiters { waiter.resume(with: .failure(lost)) }
        core.offerRoomForAtMostOnce()
        if let failure {
            core.logger.warning("Cannot set up the MQTT client for the next connection", metadata: ["mqtt.error": "\(failure.message)"])
        }
        return failure
    }

    /// A fresh session (`startFreshSession`), then a non-blocking connection attempt to the options' broker.
    static func connectAfresh(_ handle: OpaquePointer, core: ClientCore) -> (rc: MosquittoResultCode, reason: String) {
        if let failure = startFreshSession(handle, core: core) { return (.unknown, failure.message) }
        let options = core.options
        // Resolves the host name here: publishes meanwhile are refused (`sessionConnecting`), not queued.
        let rc = MosquittoResultCode(
            mosquitto_connect_bind_async(handle, options.host, Int32(clamping: options.port), Int32(clamping: options.keepalive), nil))
        let reason = rc == .success ? "" : MosquittoError.describe(rc)
        if rc == .success { core.sessionConnecting.store(true, ordering: .releasing) }
        return (rc, reason)
    }

    /// Routes libmosquitto's callbacks (network thread) to the `ClientCore` behind the userdata pointer.
    ///
    /// Each callback clears `errno` when it returns. `mosquitto_loop_read` stops reading after a packet when
    /// `errno` says EAGAIN, as its last read would; but a callback may leave EAGAIN behind too (one that published
    /// did, from libmosquitto's write to its full socket pair, before the client went without one). Left there, each
    /// pass would handle one packet only.
    static func installCallbacks(_ handle: OpaquePointer) {
        mosquitto_connect_v5_callback_set(handle) { mosq, userdata, reasonCode, flags, properties in
            defer { errno = 0 }
            guard let mosq else { return }
            ClientCore.from(userdata).handleConnect(
                handle: mosq, reasonCode: reasonCode, flags: flags, receiveMaximum: MQTTPropertyID.receiveMaximum(in: properties))
        }
        mosquitto_disconnect_v5_callback_set(handle) { _, userdata, reasonCode, _ in
            ClientCore.from(userdata).handleDisconnect(rc: reasonCode)
        }
        mosquitto_publish_v5_callback_set(handle) { _, userdata, mid, reasonCode, _ in
            defer { errno = 0 }
            ClientCore.from(userdata).handlePublishAck(mid: mid, reasonCode: reasonCode)
        }
        mosquitto_message_v5_callback_set(handle) { _, userdata, message, properties in
            defer { errno = 0 }
            guard let message else { return }
            ClientCore.from(userdata).handleMessage(message, properties: properties)
        }
        mosquitto_subscribe_v5_callback_set(handle) { _, userdata, mid, count, granted, _ in
            defer { errno = 0 }
            let codes = granted.map { Array(UnsafeBufferPointer(start: $0, count: Int(count))) } ?? []
            ClientCore.from(userdata).handleSubscribeAck(mid: mid, codes: codes)
        }
        mosquitto_unsubscribe_v5_callback_set(handle) { _, userdata, mid, _ in
            defer { errno = 0 }
            ClientCore.from(userdata).handleUnsubscribeAck(mid: mid)
        }
    }
}
