/// The configuration the gateway started with, reduced to what a reload cannot change: `gateway.*`,
/// `mqtt.*`, `auth.*`, `spool.*` and `commands.*`. The sections a reload changes (`limits.*`,
/// `homeassistant.*`, `log.*`) are not here on purpose: they are read through `SettingsStore`, so a
/// stale copy cannot be read by accident.
struct StartupConfig: Sendable {
    let gateway: GatewaySection
    let mqtt: MQTTSection
    let auth: AuthSection
    let spool: SpoolSection
    let commands: CommandsSection

    init(_ config: GatewayConfig) {
        gateway = config.gateway
        mqtt = config.mqtt
        auth = config.auth
        spool = config.spool
        commands = config.commands
    }
}
