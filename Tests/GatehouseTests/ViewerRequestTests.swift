import Testing

@testable import Gatehouse

/// Reading a live-view request: the device from the path, the token (header wins), `?fps=`.
@Suite struct ViewerRequestTests {
    @Test("a WebSocket target names the device after /v1/live/, .mjpeg included")
    func webSocket() throws {
        let request = try #require(ViewerRequest(webSocketTarget: "/v1/live/cam.mjpeg?fps=7&token=abc", authorization: nil))
        #expect(request.device == "cam.mjpeg")
        #expect(request.token == "abc")
        #expect(request.fps == 7)
        #expect(ViewerRequest(webSocketTarget: "/v1/connect", authorization: nil) == nil)
    }

    @Test("a plain GET is a stream only for <dev>.mjpeg")
    func mjpeg() throws {
        let request = try #require(ViewerRequest(mjpegTarget: "/v1/live/cam-1.mjpeg", authorization: "Bearer t1"))
        #expect(request.device == "cam-1")
        #expect(request.token == "t1")
        #expect(request.fps == nil)
        #expect(ViewerRequest(mjpegTarget: "/v1/live/cam-1", authorization: nil) == nil)
    }

    @Test("the Authorization header wins over ?token=")
    func headerWins() throws {
        #expect(ViewerRequest(webSocketTarget: "/v1/live/c?token=q", authorization: "bearer h")?.token == "h")
        #expect(ViewerRequest(webSocketTarget: "/v1/live/c?token=q", authorization: "Basic h")?.token == "q")
    }

    @Test("an unreadable or non-positive fps counts as none", arguments: ["fps=0", "fps=-2", "fps=x", "fps=", "fps=nan", "fps=inf"])
    func badFPS(_ query: String) {
        #expect(ViewerRequest(webSocketTarget: "/v1/live/c?\(query)", authorization: nil)?.fps == nil)
    }
}
