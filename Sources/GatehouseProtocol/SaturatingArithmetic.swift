extension Int64 {
    /// `self + other`, held at `.max`/`.min` instead of trapping. Times, versions and session numbers can
    /// come from devices, requests and retained messages that any MQTT client can plant: none may crash
    /// the gateway.
    public func addingSaturated(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }

    /// `self - other`, held at `.max`/`.min` instead of trapping.
    public func subtractingSaturated(_ other: Int64) -> Int64 {
        let (difference, overflow) = subtractingReportingOverflow(other)
        return overflow ? (other < 0 ? .max : .min) : difference
    }
}
