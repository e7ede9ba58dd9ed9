// scripts/bench-memory's side inside the VM: the daemon against the fake API server once per malloc setting.
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// For each setting ('default' or NAME=VALUE[,NAME=VALUE...], put in the daemon's environment), in a fresh
/// network namespace: the daemon's first sync against the fake API server, its peak RSS by then, its resident
/// size 15 s later, after 20 endpoint changes, and after a 410 relist and its sync. One line per setting:
///   @@MEM SETTING first_sync_ms=... peak_mib=... resident_mib=... after_events_mib=... relist_peak_mib=...
///   relist_resident_mib=...
/// Returns the exit status: 1 as soon as a setting's run fails.
func measureMemory(settings: [String], n: Int, data: String) -> Int32 {
    let w = "/run/bench-memory"
    try? FileManager.default.createDirectory(atPath: w, withIntermediateDirectories: true)
    writeText("\(w)/kubeconfig", Bench.kubeconfig.replacingOccurrences(of: "DATA/", with: "\(data)/"))
    func scrape() -> String? { httpGet(Settings.metrics, "/metrics") }
    func syncs() -> Int { scrape().map { sumOfMetric($0, "ipvs_proxy_syncs_total") } ?? 0 }
    func mib(_ pid: pid_t, _ field: String) -> Int { statusKiB(pid, field) / 1024 }
    /// Polls `condition` every 0.2 s; false after `seconds`.
    func waitUntil(_ seconds: Int, _ condition: () -> Bool) -> Bool {
        for _ in 0..<(seconds * 5) {
            if condition() { return true }
            pause(0.2)
        }
        return false
    }

    for (index, setting) in zip(1..., settings) {
        let namespace = "memory-\(index)"
        let log = "\(w)/daemon-\(index).log"
        var environment: [String: String] = [:]
        if setting != "default" {
            for pair in setting.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                environment[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
        }
        execute([Settings.ip, "netns", "add", namespace])
        guard
            var server = start(
                [
                    Settings.apiServer, "--input", "\(data)/svc-\(n).json", "--cert", "\(data)/tls/server.pem",
                    "--key", "\(data)/tls/server.key", "--token", "bench-token", "--event-log",
                    "\(w)/events-\(index).log", "--port", "6443", "--control-port", "6444",
                ], output: .file("\(w)/server.log"), error: .toOutput),
            waitUntil(120, { httpGet(Settings.control, "/bench/status") != nil })
        else {
            say("the fake API server did not start")
            return 1
        }
        let started = monotonicNanoseconds()
        guard
            var daemon = start(
                [
                    Settings.proxy, "run", "--kubeconfig", "\(w)/kubeconfig", "--netns", "/run/netns/\(namespace)",
                    "--state-dir", "\(w)/state-\(index)",
                ] + Settings.node + [
                    "--sync-period", "1h", "--min-sync-period", "0", "--metrics-bind-address", Settings.metrics,
                    "--healthz-bind-address", "", "--logging-format", "json", "--log-level", "info",
                ], output: .file(log), error: .toOutput, extraEnvironment: environment),
            waitUntil(600, { syncs() >= 1 })
        else {
            say("\(setting): no first sync")
            for line in readLines(log).suffix(5) { printLine(String(line)) }
            return 1
        }
        let firstSync = (monotonicNanoseconds() - started) / 1_000_000
        let peak = mib(daemon.pid, "VmHWM")
        pause(15)
        let resident = mib(daemon.pid, "VmRSS")
        _ = httpGet(Settings.control, "/bench/events?count=20&interval_ms=50", timeout: 900)
        pause(1)
        let afterEvents = mib(daemon.pid, "VmRSS")
        _ = httpGet(Settings.control, "/bench/expire", timeout: 900)
        guard waitUntil(300, { readText(log).contains("listing again") }) else {
            say("\(setting): no relist")
            return 1
        }
        let before = syncs()
        guard waitUntil(300, { syncs() >= before + 1 }) else {
            say("\(setting): no sync after the relist")
            return 1
        }
        pause(3)
        printLine(
            "@@MEM \(setting) first_sync_ms=\(firstSync) peak_mib=\(peak) resident_mib=\(resident) "
                + "after_events_mib=\(afterEvents) relist_peak_mib=\(mib(daemon.pid, "VmHWM")) "
                + "relist_resident_mib=\(mib(daemon.pid, "VmRSS"))")
        daemon.signal(SIGTERM)
        _ = daemon.wait()
        server.signal(SIGTERM)
        _ = server.wait()
        execute([Settings.ip, "netns", "del", namespace])
        pause(3)
    }
    return 0
}
