// The gateway's config types (`GatewayConfig` and its sections) live in GatehouseConfig, shared with
// gatehousectl; re-exported so every file of the gateway, and the `gatehouse` executable, sees them as before.
@_exported import GatehouseConfig
