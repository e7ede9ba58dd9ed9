// The benchmark's side inside the VM (see scripts/bench, which copies this program into the VM and runs it there
// through scripts/vm-run): times the steps, checks what they left in the kernel, and prints what
// scripts/bench-report reads (`bench-guest memory` is scripts/bench-memory's side, in Memory.swift):
//   @@INFO key=value ...
//   @@BENCH run=R size=N step=STEP ns=WALL_NS rc=STATUS rss_kb=PEAK_RSS [counters from sync's JSON]
//   @@CHECK run=R size=N step=STEP result=PASS|FAIL what=...
// and progress lines. Exit status: 0 when every command succeeded and every check passed, else 1.
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

let usage = """
    usage: bench-guest                       the whole benchmark (settings from the environment)
           bench-guest inner-ref RUN N       (internal) step 1, run inside the reference's namespace
           bench-guest inner-ours RUN N NS   (internal) steps 2-7, run inside our namespace NS
           bench-guest inner-prebound RUN N NS  (internal) steps 1b and 2b, inside namespace NS
           bench-guest inner-kubectl N FORM NS  (internal) kubectl's YAML or JSON synced, inside namespace NS
           bench-guest inner-api-ref N NS    (internal) the API steps' reference sync, inside its own namespace
           bench-guest inner-api N NS        (internal) the daemon against the fake API server, inside namespace NS
           bench-guest memory SETTING...     scripts/bench-memory's measurements, one daemon per malloc setting
                                             ('default' or NAME=VALUE[,NAME=VALUE...]; N Services from the
                                             environment's N, default 10000)

    Environment: BENCH_SIZES (1000,10000), BENCH_RUNS (3), BENCH_YAML_SIZE (1000,10000; 0: skip),
    BENCH_API_SIZE (10000; 0: skip), BENCH_SETTLE (seconds to wait after deleting a namespace, 3),
    BENCH_DATA (/bench/data), BENCH_TIME (GNU time, /usr/local/bin/gnutime).
    """

let settings = Settings()
let arguments = Array(CommandLine.arguments.dropFirst())

/// This program's own path, to start its parts inside other namespaces.
func ownPath() -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = readlink("/proc/self/exe", &buffer, Int(PATH_MAX))
    return count > 0 ? String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        : CommandLine.arguments[0]
}

// ------------------------------------------------------------------ the parts inside a namespace
if let part = arguments.first {
    func argument(_ index: Int) -> String {
        guard index < arguments.count else {
            FileHandle.standardError.write(Data((usage + "\n").utf8))
            exit(2)
        }
        return arguments[index]
    }
    func size(_ index: Int) -> Int { Int(argument(index)) ?? 0 }
    switch part {
    case "inner-ref": Bench(settings: settings, run: argument(1), n: size(2)).reference()
    case "inner-ours": Bench(settings: settings, run: argument(1), n: size(2)).ours(namespace: argument(3))
    case "inner-prebound": Bench(settings: settings, run: argument(1), n: size(2)).prebound(namespace: argument(3))
    case "inner-kubectl":
        Bench(settings: settings, run: "kubectl", n: size(1)).kubectl(form: argument(2), namespace: argument(3))
    case "inner-api-ref": Bench(settings: settings, run: "api", n: size(1)).apiReference(namespace: argument(2))
    case "inner-api": Bench(settings: settings, run: "api", n: size(1)).api(namespace: argument(2))
    case "memory":
        exit(
            measureMemory(
                settings: Array(arguments.dropFirst()), n: Int(ProcessInfo.processInfo.environment["N"] ?? "") ?? 10000,
                data: settings.data))
    case "-h", "--help":
        print(usage)
    default:
        FileHandle.standardError.write(Data((usage + "\n").utf8))
        exit(2)
    }
    exit(0)
}

// ------------------------------------------------------------------ the whole benchmark (root namespace)
let w = Settings.work
let own = ownPath()
try? FileManager.default.createDirectory(atPath: w, withIntermediateDirectories: true)
remove("\(w)/failed")
func failed(_ text: String) { appendLine("\(w)/failed", text) }

for file in [Settings.proxy, settings.time, Settings.ipvsadm, Settings.ip, Settings.nft]
    + (settings.apiSize != 0 ? [Settings.apiServer] : [])
where access(file, X_OK) != 0 {
    say("ERROR: \(file) missing")
    exit(1)
}
let clockBefore = monotonicNanoseconds()
let clockAfter = monotonicNanoseconds()
var system = utsname()
uname(&system)
let release = withUnsafeBytes(of: system.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
let cpus = ProcessInfo.processInfo.activeProcessorCount
let memory = readLines("/proc/meminfo").first { $0.hasPrefix("MemTotal:") }?.split(separator: " ").dropFirst().first
    ?? "0"
printLine("@@INFO kernel=\(release) cpus=\(cpus) mem_kb=\(memory) clock_overhead_ns=\(clockAfter - clockBefore)")
func firstLine(_ arguments: [String]) -> String {
    let output = capture(arguments, error: .toOutput).output
    return String(lines(output).first ?? "").replacingOccurrences(of: " ", with: "_")
}
printLine(
    "@@INFO ipvsadm=\(firstLine([Settings.ipvsadm, "--version"])) proxy=\(firstLine([Settings.proxy, "version"]))")
say(
    "kernel \(release), \(cpus) CPUs; sizes \(settings.sizes), \(settings.runs) run(s), YAML at N=\(settings.yamlSizes), "
        + "API at N=\(settings.apiSize)")

// Load the scheduler now, not during the first timed step (the kernel would call modprobe).
if execute(["modprobe", "ip_vs_rr"]) != 0 {
    say("ERROR: modprobe ip_vs_rr")
    exit(1)
}
// Warm up: the first start of a binary pays for faulting in its libraries (~1 s for ipvs-proxy's Swift runtime
// under TCG); every timed start should cost the same.
execute([Settings.proxy, "version"], output: .file("/dev/null"), error: .toOutput)
execute([Settings.ipvsadm, "-Ln"], output: .file("/dev/null"), error: .toOutput)
execute([settings.time, "-o", "/dev/null", "true"])

/// A fresh network namespace with lo up (with lo down, IPv4 real servers get EINVAL).
func newNamespace(_ name: String) -> Bool {
    execute([Settings.ip, "netns", "add", name]) == 0 && execute([Settings.ip, "-n", name, "link", "set", "lo", "up"]) == 0
}

/// Runs one part of the benchmark as this program inside namespace `name`.
func inNamespace(_ name: String, _ part: [String]) {
    execute([Settings.ip, "netns", "exec", name, own] + part)
}

/// Empties a namespace's table and addresses, deletes it, and waits for the kernel's (asynchronous) namespace
/// cleanup: the virtual-server hash table is shared by every namespace.
func dropNamespace(_ name: String) {
    execute([Settings.ip, "netns", "exec", name, Settings.ipvsadm, "-C"])
    execute([Settings.ip, "-n", name, "link", "del", "kube-ipvs0"], error: .file("/dev/null"))
    execute([Settings.ip, "netns", "del", name])
    pause(Double(settings.settle) ?? 3)
    quiesce()
}

/// Waits (at most 120 s) until the guest's CPUs were at least 90 % idle over one second: after a namespace of
/// 10,000 Services is deleted the kernel goes on freeing it in the background for longer than the settle time,
/// and whatever is measured next would share the vCPUs with that.
func quiesce() {
    func times() -> (busy: Int, idle: Int) {
        let fields = (readLines("/proc/stat").first ?? "").split(separator: " ").dropFirst().map { Int($0) ?? 0 }
        guard fields.count >= 7 else { return (0, 0) }
        // user nice system idle iowait irq softirq
        return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6], fields[3] + fields[4])
    }
    var waited = 0
    while waited < 120 {
        let first = times()
        pause(1)
        let second = times()
        let busy = second.busy - first.busy
        let idle = second.idle - first.idle
        if idle * 10 >= (busy + idle) * 9 { break }
        waited += 1
    }
    if waited != 0 { say("waited \(waited) s more for the CPUs to be idle (the kernel's namespace cleanup)") }
}

func sizes(_ list: String) -> [Int] { list.split(separator: ",").compactMap { Int($0) } }

// A warm-up round, not reported: one ipvsadm -R and one sync of the smallest size, so that the first timed step
// does not pay for the guest's first use of its memory and the kernel's caches.
let smallest = sizes(settings.sizes).min() ?? 0
say("---- warm-up (not measured): ipvsadm -R and ipvs-proxy sync of N = \(smallest)")
if newNamespace("warm-ref") {
    execute(
        [Settings.ip, "netns", "exec", "warm-ref", Settings.ipvsadm, "-R"],
        input: .file("\(settings.data)/rules-\(smallest).txt"))
}
dropNamespace("warm-ref")
if newNamespace("warm-ours") {
    let status = execute(
        [
            Settings.proxy, "sync", "-f", "\(settings.data)/svc-\(smallest).json", "--netns", "/run/netns/warm-ours",
            "--state-dir", "\(w)/state-warm",
        ] + Settings.node, output: .file("/dev/null"))
    if status != 0 { failed("warm-up sync exited with status \(status)") }
} else {
    failed("warm-up sync exited with status 1")
}
dropNamespace("warm-ours")

runs: for run in stride(from: 1, through: settings.runs, by: 1) {
    for n in sizes(settings.sizes) {
        say("---- run \(run) of \(settings.runs), N = \(n)")
        for (prefix, part) in [("ref", "inner-ref"), ("ours", "inner-ours"), ("pre", "inner-prebound")] {
            let name = "\(prefix)-\(run)-\(n)"
            guard newNamespace(name) else {
                failed("ip netns add")
                break runs
            }
            inNamespace(name, [part, "\(run)", "\(n)"] + (part == "inner-ref" ? [] : ["/run/netns/\(name)"]))
            dropNamespace(name)
        }
    }
}

for n in sizes(settings.yamlSizes) where n > 0 {
    say("---- kubectl's YAML and JSON, N = \(n)")
    if !sizes(settings.sizes).contains(n) {  // no step-1 reference at this size yet: measure one
        if newNamespace("ref-yaml") { inNamespace("ref-yaml", ["inner-ref", "yaml", "\(n)"]) }
        dropNamespace("ref-yaml")
    }
    for form in ["yaml", "json"] {
        if newNamespace("kubectl-\(form)") {
            inNamespace("kubectl-\(form)", ["inner-kubectl", "\(n)", form, "/run/netns/kubectl-\(form)"])
        }
        dropNamespace("kubectl-\(form)")
    }
}

if settings.apiSize > 0 {
    let n = settings.apiSize
    say("---- the daemon against the fake API server, N = \(n)")
    if newNamespace("api-ref") { inNamespace("api-ref", ["inner-api-ref", "\(n)", "/run/netns/api-ref"]) }
    dropNamespace("api-ref")
    if newNamespace("api") { inNamespace("api", ["inner-api", "\(n)", "/run/netns/api"]) }
    dropNamespace("api")
}

let problems = readLines("\(w)/failed")
if !problems.isEmpty {
    say("FAILED: \(problems.count) problem(s):")
    for line in problems { printLine("    \(line)") }
    exit(1)
}
say("all commands succeeded, all checks passed")
exit(0)
