// The daemon against the fake Kubernetes API server (bench-api-server): steps a-e of scripts/bench.
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The daemon's counters the API steps compare before and after.
struct Counters {
    var operations = 0, dumps = 0, syncs = 0, nftTransactions = 0, nftElements = 0, nftReads = 0
}

/// One event the fake server sent, from its event log: resource version, time sent (seconds since 1970, `-`
/// when no watch was open), the slice, the address replaced and the new one.
struct SentEvent {
    let line: Substring
    var fields: [Substring] { line.split(separator: " ") }
    var resourceVersion: Int { fields.first.flatMap { Int($0) } ?? 0 }
    var sent: String { fields.count > 1 ? String(fields[1]) : "-" }
}

/// A "synced" line of the daemon's JSON log: the resource version it carried and when it was logged.
struct SyncedLine {
    let resourceVersion: Int
    let time: Double?
}

/// The daemon's JSON log, read as it grows (each poll reads only what was added): its "synced" lines (those that
/// name a resource version; found as the shell version found them, by text, not by decoding) and how many
/// "listed" lines it has.
final class DaemonLog {
    let path: String
    private var offset: off_t = 0
    private var partial: [UInt8] = []
    private(set) var synced: [SyncedLine] = []
    private(set) var newestSynced = 0
    private(set) var listed = 0

    init(_ path: String) { self.path = path }

    /// Reads what was added since the last call.
    @discardableResult
    func update() -> DaemonLog {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return self }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, offset) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            offset += off_t(count)
            var start = 0
            for index in 0..<count where buffer[index] == UInt8(ascii: "\n") {
                partial.append(contentsOf: buffer[start..<index])
                line(partial)
                partial.removeAll(keepingCapacity: true)
                start = index + 1
            }
            partial.append(contentsOf: buffer[start..<count])
        }
        return self
    }

    private static let syncedMessage = Array(#""msg":"synced""#.utf8)
    private static let listedMessage = Array(#""msg":"listed""#.utf8)
    private static let versionKey = Array(#""resourceVersion":""#.utf8)
    private static let timeKey = Array(#""ts":"#.utf8)
    private static let numberBytes = Set("0123456789.eE+-".utf8)

    private func line(_ bytes: [UInt8]) {
        if Self.find(Self.listedMessage, in: bytes) != nil { listed += 1 }
        guard Self.find(Self.syncedMessage, in: bytes) != nil, let at = Self.find(Self.versionKey, in: bytes) else {
            return
        }
        // "resourceVersion":"<digits>"
        let digits = bytes[at...].prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        guard !digits.isEmpty, at + digits.count < bytes.count, bytes[at + digits.count] == UInt8(ascii: "\""),
            let version = Int(String(decoding: digits, as: UTF8.self))
        else { return }
        var time: Double?
        if let t = Self.find(Self.timeKey, in: bytes) {
            let number = bytes[t...].prefix { Self.numberBytes.contains($0) }
            time = Double(String(decoding: number, as: UTF8.self))
        }
        synced.append(SyncedLine(resourceVersion: version, time: time))
        newestSynced = max(newestSynced, version)
    }

    /// The index just after the first occurrence of `needle` in `bytes`.
    private static func find(_ needle: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= needle.count, let first = needle.first else { return nil }
        var index = 0
        while index <= bytes.count - needle.count {
            if bytes[index] == first && bytes[index..<(index + needle.count)].elementsEqual(needle) {
                return index + needle.count
            }
            index += 1
        }
        return nil
    }
}

extension Bench {
    /// The API steps' reference: a one-shot sync of the same objects from the JSON file, from an empty table.
    func apiReference(namespace: String) {
        let state = "\(w)/state-api-ref"
        remove(state)
        timed(
            "\(w)/sa.json", "\(w)/sa.err",
            [Settings.proxy, "sync", "-f", "\(data)/svc-\(n).json", "--netns", namespace, "--state-dir", state]
                + Settings.node + ["--output", "json"])
        emit(
            "api-reference-sync", "API reference: sync from the JSON file, empty table", "\(w)/sa.err",
            Self.syncCounts("\(w)/sa.json"))
        checkTable("api-reference-sync", "\(data)/rules-\(n).txt")
        remove("\(w)/sa.json")
    }

    /// For each event, the milliseconds from its sending to the end of the first sync whose "synced" line names its
    /// resource version or a newer one (`ts`, the time logged right after the sync, on the same clock); "-" when
    /// there is none.
    static func latencies(_ events: [SentEvent], log: DaemonLog) -> [String] {
        log.update()
        let synced = log.synced.filter { $0.time != nil }
        return events.map { event in
            guard event.sent != "-", let sent = Double(event.sent),
                let sync = synced.first(where: { $0.resourceVersion >= event.resourceVersion })
            else { return "-" }
            return String(format: "%.3f", (sync.time! - sent) * 1000)
        }
    }

    /// The input's rules with every address the events replaced (in order) by its replacement.
    func expectedRules(events: [SentEvent]) -> String {
        var replacement: [Substring: Substring] = [:]
        for event in events {
            let fields = event.fields
            if fields.count >= 5 { replacement[fields[3]] = fields[4] }
        }
        var text = ""
        for line in readLines("\(data)/rules-\(n).txt") {
            var fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.first == "-a", fields.count >= 5 else {
                text += line + "\n"
                continue
            }
            let parts = fields[4].split(separator: ":", omittingEmptySubsequences: false)
            var endpoint = parts[0]
            while let next = replacement[endpoint] { endpoint = next }
            fields[4] = Substring(endpoint + ":" + (parts.count > 1 ? parts[1] : ""))
            text += fields.joined(separator: " ") + "\n"
        }
        return text
    }

    func counters() -> Counters {
        if !scrape() { failed("run \(run) N=\(n): no metrics from the daemon") }
        return Counters(
            operations: metric("ipvs_proxy_kernel_operations_total"), dumps: metric("ipvs_proxy_table_reads_total"),
            syncs: metric("ipvs_proxy_syncs_total"), nftTransactions: metric("ipvs_proxy_nftables_transactions_total"),
            nftElements: metric("ipvs_proxy_nftables_elements_total"),
            nftReads: metric("ipvs_proxy_nftables_reads_total"))
    }

    /// Asks the fake server on its control port; prints its answer.
    func control(_ request: String, failure: String) {
        let answer = httpGet(Settings.control, "/bench/\(request)", timeout: 900)
        if answer == nil { failed(failure) }
        say("fake API server: \((answer ?? "").trimmingCharacters(in: .newlines))")
    }

    /// Asks the fake server for events, waits until the daemon has synced the last, and returns them.
    func events(_ step: String, _ request: String, eventLog: String, daemon: inout Child, log: DaemonLog)
        -> [SentEvent]
    {
        let before = readLines(eventLog).count
        control(request, failure: "run \(run) N=\(n) \(step): control request \(request) failed")
        let sent = readLines(eventLog).dropFirst(before).map { SentEvent(line: $0) }
        let last = sent.last?.resourceVersion ?? 0
        if !waitSynced(last, seconds: 600, daemon: &daemon, log: log) {
            failed("run \(run) N=\(n) \(step): resource version \(sent.last.map { "\($0.resourceVersion)" } ?? "") "
                + "not synced within 600 s")
        }
        return sent
    }

    /// Waits until a sync that carried resource version `version` (or newer) has finished.
    func waitSynced(_ version: Int, seconds: Int, daemon: inout Child, log: DaemonLog) -> Bool {
        var polls = seconds * 10
        while log.update().newestSynced < version && polls > 0 {
            if !daemon.isRunning() { return false }
            pause(0.1)
            polls -= 1
        }
        return log.update().newestSynced >= version
    }

    static let kubeconfig = """
        apiVersion: v1
        kind: Config
        clusters:
        - name: bench
          cluster:
            server: https://127.0.0.1:6443
            certificate-authority: DATA/tls/ca.pem
        users:
        - name: bench
          user:
            token: bench-token
        contexts:
        - name: bench
          context:
            cluster: bench
            user: bench
        current-context: bench

        """

    /// The daemon (run --kubeconfig) against the fake API server, in namespace `namespace`: its first sync (timed
    /// from its start to the sync counter moving), its resident size a minute later, 50 single-endpoint changes at
    /// least 100 ms apart (latency of each from its sending to the end of the sync that carried it, by resource
    /// version; their kernel operations, full dumps and nftables changes), a burst of 1,000 such changes within a
    /// second, then the EndpointSlice watch ended with 410 Expired and the relist's sync; the peak RSS after it.
    func api(namespace: String) {
        let state = "\(w)/state-api"
        remove(state)
        let eventLog = "\(w)/api-events.log"
        let logPath = "\(w)/api-daemon.log"
        let log = DaemonLog(logPath)
        let empty = "\(w)/empty"
        writeText(empty, "")
        guard
            var server = start(
                [
                    Settings.apiServer, "--input", "\(data)/svc-\(n).json", "--cert", "\(data)/tls/server.pem", "--key",
                    "\(data)/tls/server.key", "--token", "bench-token", "--event-log", eventLog, "--port", "6443",
                    "--control-port", "6444",
                ], output: .file("\(w)/api-server.log"), error: .toOutput)
        else {
            (ns, rc, rss) = (0, 1, 0)
            return emit("api-first-sync", "API: the fake API server did not start", "\(w)/api-server.log")
        }
        var waited = 0
        while httpGet(Settings.control, "/bench/status") == nil {
            guard server.isRunning(), waited < 1200 else { break }
            pause(0.1)
            waited += 1
        }
        say(readText("\(w)/api-server.log").trimmingCharacters(in: .newlines))
        if !server.isRunning() {
            (ns, rc, rss) = (0, 1, 0)
            return emit("api-first-sync", "API: the fake API server did not start", "\(w)/api-server.log")
        }
        writeText("\(w)/kubeconfig", Self.kubeconfig.replacingOccurrences(of: "DATA/", with: "\(data)/"))

        // First sync: from the daemon's start until its sync counter moves (polled every 50 ms).
        let started = monotonicNanoseconds()
        guard
            var daemon = start(
                [
                    Settings.proxy, "run", "--kubeconfig", "\(w)/kubeconfig", "--netns", namespace, "--state-dir",
                    state,
                ] + Settings.node + [
                    "--sync-period", "1h", "--min-sync-period", "0", "--metrics-bind-address", Settings.metrics,
                    "--healthz-bind-address", "", "--logging-format", "json", "--log-level", "info",
                ], output: .file(logPath), error: .toOutput)
        else {
            (ns, rc, rss) = (0, 1, 0)
            emit("api-first-sync", "API: the daemon's first sync", logPath)
            server.signal(SIGTERM)
            _ = server.wait()
            return
        }
        rc = 1
        var now = started
        while true {
            now = monotonicNanoseconds()
            if now - started > 600_000_000_000 || !daemon.isRunning() { break }
            if scrape() && metric("ipvs_proxy_syncs_total") >= 1 {
                rc = 0
                break
            }
            pause(0.05)
        }
        ns = now - started
        let first = now
        rss = statusKiB(daemon.pid, "VmHWM")
        if rc != 0 {
            emit("api-first-sync", "API: the daemon's first sync", logPath)
            daemon.signal(SIGTERM)
            server.signal(SIGTERM)
            _ = daemon.wait()
            _ = server.wait()
            return
        }
        checkTable("api-first-sync", "\(data)/rules-\(n).txt")
        // Its resident size a minute after the first sync, with nothing happening.
        while monotonicNanoseconds() - first < 60_000_000_000 { pause(0.5) }
        let resident = statusKiB(daemon.pid, "VmRSS")
        emit("api-first-sync", "API: the daemon's first sync", empty, ["resident_kb=\(resident)"])

        // 50 changes at least 100 ms apart.
        var before = counters()
        let changes = events(
            "api-events", "events?count=50&interval_ms=100", eventLog: eventLog, daemon: &daemon, log: log)
        var after = counters()
        let latencies = Self.latencies(changes, log: log)
        let operations = after.operations - before.operations
        let dumps = after.dumps - before.dumps
        let nftTransactions = after.nftTransactions - before.nftTransactions
        let nftElements = after.nftElements - before.nftElements
        (ns, rc, rss) = (0, 0, 0)
        emit(
            "api-events", "API: 50 endpoint changes, 100 ms apart", empty,
            [
                "count=50", "ops=\(operations)", "full_dumps=\(dumps)", "syncs=\(after.syncs - before.syncs)",
                "nft_transactions=\(nftTransactions)", "nft_elements=\(nftElements)",
                "nft_reads=\(after.nftReads - before.nftReads)", "latencies_ms=\(latencies.joined(separator: ","))",
            ])
        check(
            "api-events", "latency-of-every-event", !latencies.contains("-"),
            "(an event's resource version is in no synced line: does the daemon log resourceVersion?)")
        check(
            "api-events", "2-operations-per-event-no-dump", operations == 100 && dumps == 0,
            "(\(operations) operations, \(dumps) full dumps)")
        check(
            "api-events", "nftables-untouched", nftTransactions == 0 && nftElements == 0,
            "(\(nftTransactions) transactions, \(nftElements) elements)")
        writeText("\(w)/api-expected", expectedRules(events: readLines(eventLog).map { SentEvent(line: $0) }))
        checkTable("api-events", "\(w)/api-expected")

        // A burst: 1,000 changes (at most one per slice) within one second.
        let count = min(1000, n)
        before = counters()
        let burst = events(
            "api-burst", "burst?count=\(count)&within_ms=1000", eventLog: eventLog, daemon: &daemon, log: log)
        after = counters()
        // From the first event's sending to the end of the sync that carried the last.
        let last = Self.latencies(burst, log: log).last ?? ""
        let firstSent = burst.first.flatMap { Double($0.sent) } ?? 0
        let lastSent = burst.last.flatMap { Double($0.sent) } ?? 0
        let span = String(format: "%.3f", (lastSent - firstSent) * 1000)
        let burstOperations = after.operations - before.operations
        ns = last == "-" ? 0 : Int64(((Double(last) ?? 0) + (Double(span) ?? 0)) * 1e6 + 0.5)
        (rc, rss) = (0, 0)
        emit(
            "api-burst", "API: \(count) endpoint changes within 1 s, first sent to last synced", empty,
            [
                "count=\(count)", "ops=\(burstOperations)", "full_dumps=\(after.dumps - before.dumps)",
                "syncs=\(after.syncs - before.syncs)", "sending_ms=\(span)",
                "nft_transactions=\(after.nftTransactions - before.nftTransactions)",
                "nft_elements=\(after.nftElements - before.nftElements)",
            ])
        check("api-burst", "last-event-synced", last != "-")
        check("api-burst", "2-operations-per-event", burstOperations == 2 * count, "(\(burstOperations) operations)")
        writeText("\(w)/api-expected", expectedRules(events: readLines(eventLog).map { SentEvent(line: $0) }))
        checkTable("api-burst", "\(w)/api-expected")

        // The EndpointSlice watch ends with 410 Expired; the daemon lists again, and its sync should change nothing.
        before = counters()
        let listed = log.update().listed
        let expired = monotonicNanoseconds()
        control("expire", failure: "run \(run) N=\(n) api-relist: expire failed")
        rc = 1
        now = expired
        while true {
            now = monotonicNanoseconds()
            if now - expired > 600_000_000_000 || !daemon.isRunning() { break }
            if log.update().listed > listed && scrape()
                && metric("ipvs_proxy_syncs_total") > before.syncs
            {
                rc = 0
                break
            }
            pause(0.05)
        }
        ns = now - expired
        rss = statusKiB(daemon.pid, "VmHWM")
        let residentAfter = statusKiB(daemon.pid, "VmRSS")
        after = counters()
        let daemonLog = readText(logPath)
        let relisted = countLines(daemonLog, containing: "resource version expired; listing again")
        let relistOperations = after.operations - before.operations
        daemon.signal(SIGTERM)
        let status = daemon.wait()
        if status != 0 {
            rc = status
            failed("run \(run) N=\(n) daemon: exit status \(status) after SIGTERM")
        }
        server.signal(SIGTERM)
        _ = server.wait()
        emit(
            "api-relist", "API: 410 Expired, relist and its sync", empty,
            [
                "ops=\(relistOperations)", "full_dumps=\(after.dumps - before.dumps)",
                "syncs=\(after.syncs - before.syncs)", "resident_kb=\(residentAfter)", "relists=\(relisted)",
            ])
        check(
            "api-relist", "relisted-and-changed-nothing", relisted >= 1 && relistOperations == 0,
            "(\(relisted) relists logged, \(relistOperations) operations)")
        checkTable("api-relist", "\(w)/api-expected")
        let complaints = lines(daemonLog).filter { line in
            ["warning", "error", "critical"].contains { line.contains("\"level\":\"\($0)\"") }
        }
        if !complaints.isEmpty {
            say("the daemon logged warnings or errors (first 10):")
            for line in complaints.prefix(10) { printLine("    \(line)") }
        }
        remove("\(w)/api-expected")
    }
}
