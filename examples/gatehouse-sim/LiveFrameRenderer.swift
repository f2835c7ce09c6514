import CJPEG

#if canImport(Glibc)
import Glibc
#endif

/// The simulated camera's live picture, encoded by libjpeg-turbo: a fixed colour gradient, a bright bar that
/// sweeps across once every 64 frames, and the frame number in large seven-segment digits, so a person (or a
/// test comparing two frames) sees at once that the picture moves.
struct LiveFrameRenderer: Sendable {
    let width: Int
    let height: Int
    let quality: Int
    private let background: [UInt8]

    init(width: Int = 640, height: Int = 360, quality: Int = 80) {
        self.width = width
        self.height = height
        self.quality = quality
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let i = (y * width + x) * 3
                pixels[i] = UInt8(30 + 90 * x / width)
                pixels[i + 1] = UInt8(40 + 80 * y / height)
                pixels[i + 2] = UInt8(110 + 60 * (width - x) / width)
            }
        }
        background = pixels
    }

    /// Frame `number` as a JPEG; nil if libjpeg fails (it does not for these sizes).
    func jpeg(frame number: Int) -> [UInt8]? {
        var pixels = background
        let barWidth = max(8, width / 16)
        let barX = (number % 64) * (width - barWidth) / 63
        fill(&pixels, x: barX, y: 0, w: barWidth, h: height, rgb: (250, 200, 40))
        let digits = Array(String(number))
        let (digitW, digitH, gap) = (36, 64, 12)
        fill(&pixels, x: 12, y: 12, w: digits.count * (digitW + gap) + gap, h: digitH + 2 * gap, rgb: (15, 15, 20))
        for (index, digit) in digits.enumerated() {
            drawDigit(&pixels, Int(String(digit)) ?? 0, x: 12 + gap + index * (digitW + gap), y: 12 + gap, w: digitW, h: digitH)
        }
        return pixels.withUnsafeBufferPointer { rgb -> [UInt8]? in
            var out: UnsafeMutablePointer<UInt8>?
            var size: UInt = 0
            guard gh_jpeg_encode_rgb(rgb.baseAddress, Int32(width), Int32(height), Int32(quality), &out, &size) == 0, let out else {
                return nil
            }
            defer { free(out) }
            return Array(UnsafeBufferPointer(start: out, count: Int(size)))
        }
    }

    private func fill(_ pixels: inout [UInt8], x: Int, y: Int, w: Int, h: Int, rgb: (UInt8, UInt8, UInt8)) {
        for row in max(0, y)..<min(height, y + h) {
            for column in max(0, x)..<min(width, x + w) {
                let i = (row * width + column) * 3
                pixels[i] = rgb.0
                pixels[i + 1] = rgb.1
                pixels[i + 2] = rgb.2
            }
        }
    }

    /// Segments a–g of each digit, clockwise from the top, then the middle one.
    private static let segments: [[Bool]] = [
        [true, true, true, true, true, true, false], [false, true, true, false, false, false, false],
        [true, true, false, true, true, false, true], [true, true, true, true, false, false, true],
        [false, true, true, false, false, true, true], [true, false, true, true, false, true, true],
        [true, false, true, true, true, true, true], [true, true, true, false, false, false, false],
        [true, true, true, true, true, true, true], [true, true, true, true, false, true, true],
    ]

    private func drawDigit(_ pixels: inout [UInt8], _ digit: Int, x: Int, y: Int, w: Int, h: Int) {
        let t = 6
        let half = h / 2
        let on = Self.segments[digit]
        let white: (UInt8, UInt8, UInt8) = (240, 240, 240)
        if on[0] { fill(&pixels, x: x, y: y, w: w, h: t, rgb: white) }
        if on[1] { fill(&pixels, x: x + w - t, y: y, w: t, h: half, rgb: white) }
        if on[2] { fill(&pixels, x: x + w - t, y: y + half, w: t, h: h - half, rgb: white) }
        if on[3] { fill(&pixels, x: x, y: y + h - t, w: w, h: t, rgb: white) }
        if on[4] { fill(&pixels, x: x, y: y + half, w: t, h: h - half, rgb: white) }
        if on[5] { fill(&pixels, x: x, y: y, w: t, h: half, rgb: white) }
        if on[6] { fill(&pixels, x: x, y: y + half - t / 2, w: w, h: t, rgb: white) }
    }
}
