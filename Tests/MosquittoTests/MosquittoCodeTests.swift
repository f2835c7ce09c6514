import Mosquitto
import Testing

@Suite struct MosquittoCodeTests {
    @Test func reasonCodesSwitchAndClassify() {
        let code = MQTTReasonCode(rawValue: 0x87)
        switch code {
        case .notAuthorized: break
        default: Issue.record("0x87 should match .notAuthorized")
        }
        #expect(code.isFailure)
        #expect(!MQTTReasonCode.success.isFailure)
        #expect(!MQTTReasonCode.noMatchingSubscribers.isFailure)
        #expect(MQTTReasonCode.unspecifiedError.isFailure)
        #expect(code.description == "not authorized (0x87)")
        #expect(MQTTReasonCode.success.description.hasSuffix("(0x00)"))
    }

    @Test(arguments: [0x87, 0x90, 0x95, 0x99, 0x9A, 0x9B] as [UInt8])
    func permanentPublishRejections(raw: UInt8) {
        let reason = MQTTReasonCode(rawValue: raw)
        #expect(reason.isPermanentPublishRejection)
        #expect(MosquittoError(code: .publishRejected, message: "", reasonCode: reason).isPermanentRejection)
    }

    @Test(arguments: [0x00, 0x10, 0x80, 0x83, 0x89, 0x97, 0x96] as [UInt8])
    func rejectionsARetryMayPass(raw: UInt8) {
        let reason = MQTTReasonCode(rawValue: raw)
        #expect(!reason.isPermanentPublishRejection)
        #expect(!MosquittoError(code: .publishRejected, message: "", reasonCode: reason).isPermanentRejection)
    }

    @Test func permanentOnlyForPublishRejections() {
        // The same number in the other code space, or on another kind of error, is not a publish rejection.
        #expect(!MosquittoError(code: .connectionRefused, message: "", reasonCode: .notAuthorized).isPermanentRejection)
        #expect(!MosquittoError(code: .other, message: "", resultCode: .payloadSize).isPermanentRejection)
        #expect(!MosquittoError(code: .closed, message: "").isPermanentRejection)
    }

    @Test func errorsMatchTheirCodesInCatch() {
        let refused: any Error = MosquittoError(code: .publishRejected, message: "no", reasonCode: .quotaExceeded)
        let lost: any Error = MosquittoError(code: .unreachable, message: "lost", resultCode: .connectionLost)
        #expect(MQTTReasonCode.quotaExceeded ~= refused)
        #expect(!(MQTTReasonCode.notAuthorized ~= refused))
        #expect(!(MosquittoResultCode.connectionLost ~= refused))
        #expect(MosquittoResultCode.connectionLost ~= lost)
        do {
            throw refused
        } catch MQTTReasonCode.quotaExceeded {
        } catch {
            Issue.record("catch MQTTReasonCode.quotaExceeded should match, got \(error)")
        }
        switch MosquittoResultCode(rawValue: 4) {
        case .noConnection: break
        default: Issue.record("4 is MOSQ_ERR_NO_CONN")
        }
        #expect(MosquittoResultCode.inval.rawValue == 3)
        #expect(MosquittoResultCode.payloadSize.rawValue == 9)
    }
}
