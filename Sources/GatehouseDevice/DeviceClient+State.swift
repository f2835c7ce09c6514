public import GatehouseProtocol

extension DeviceClient {
    /// Reports state (PROTOCOL.md 3.2): `data` is merged into the retained reported state as a JSON Merge
    /// Patch (`null` removes a key). Returns once the gateway acknowledged it (or refused it).
    @discardableResult
    public func reportState(_ data: JSONObject) async throws -> SendOutcome {
        try await self.send(.state(data: data))
    }

    /// Reports that the keys of `update` now have their desired values: the delta's keys and values as state.
    /// For a device that applied everything; one that applied part reports that part with ``reportState(_:)``.
    @discardableResult
    public func reportApplied(_ update: DesiredUpdate) async throws -> SendOutcome {
        try await self.reportState(update.delta)
    }

    /// Hands desired updates to the handler, one at a time, until the stream ends.
    func deliverDesired(_ updates: AsyncStream<DesiredUpdate>) async {
        guard let handler = self.desiredHandler else { return }
        for await update in updates {
            await handler(update)
        }
    }
}
