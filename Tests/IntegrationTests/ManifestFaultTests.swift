import Foundation
import IPVS
import IPVSModel
import Synchronization
import Testing

/// Waits (up to `seconds`) until the daemon's log says something.
private func logSays(_ daemon: Daemon, _ text: String, within seconds: Double = 10) -> Bool {
    eventually(timeoutSeconds: seconds) { daemon.output.contains(text) ? true : nil } ?? false
}

/// Waits (up to `seconds`) until the kernel holds exactly these virtual servers.
private func converges(_ ipvs: IPVSHandle, to keys: Set<VirtualServerKey>, within seconds: Double) throws -> Bool {
    try eventually(timeoutSeconds: seconds) { try ipvs.virtualServerKeys() == keys ? true : nil }
        ?? false
}

/// Lets the sampler take `count` more samples: the fault is held that long, measured by the sampler's own reads.
private func hold(_ sampler: VirtualServerSampler, samples count: Int) {
    let start = sampler.readings
    _ = eventually(timeoutSeconds: 30, every: 0.05) { sampler.readings >= start + count ? true : nil }
}

@Suite("Faults of the manifest folder: nothing lost", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct ManifestFaultTests {
    /// The folder moved away (a deploy tool replacing it) is a read that fails: every virtual server stays while it
    /// is away, and a change made meanwhile arrives when it is back. A folder emptied on purpose does remove them.
    @Test func aFolderMovedAwayAndBackLosesNothingAndAnEmptiedOneRemovesTheServices() throws {
        let namespace = try TestNamespace("moved")
        let ipvs = try namespace.ipvs()
        let parent = try temporaryFolder("moved")
        let folder = (parent as NSString).appendingPathComponent("manifests")
        let away = (parent as NSString).appendingPathComponent("away")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        let ips = ["10.96.70.1", "10.96.70.2", "10.96.70.3"]
        for (index, ip) in ips.enumerated() {
            try write(
                service("svc\(index)", clusterIP: ip, endpoints: ["10.244.0.1"]), to: folder, as: "svc\(index).yaml")
        }
        let daemon = try Daemon(namespace: namespace, manifests: folder)
        defer { daemon.stop() }
        let all = Set(ips.map(serviceKey))
        #expect(try converges(ipvs, to: all, within: 20), "\(daemon.output)")

        let sampler = VirtualServerSampler(ipvs) { all }
        try FileManager.default.moveItem(atPath: folder, toPath: away)
        #expect(logSays(daemon, "the source cannot read"), "\(daemon.output)")
        hold(sampler, samples: 10)
        try write(service("svc3", clusterIP: "10.96.70.4", endpoints: ["10.244.0.1"]), to: away, as: "svc3.yaml")
        try FileManager.default.moveItem(atPath: away, toPath: folder)
        #expect(try converges(ipvs, to: all.union([serviceKey("10.96.70.4")]), within: 5), "\(daemon.output)")
        let report = sampler.stop()
        #expect(report.misses.count == 0, "\(report)")
        #expect(report.longestGap <= 0.5, "\(report)")
        #expect(logSays(daemon, "the source reads again"))

        for file in try FileManager.default.contentsOfDirectory(atPath: folder) {
            try FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent(file))
        }
        #expect(try converges(ipvs, to: [], within: 5), "\(daemon.output)")
    }

    /// A ConfigMap volume: the files are symlinks through `..data`, which the kubelet swaps atomically to a new
    /// timestamped folder; files that come and go get their own symlinks before and after the swap.
    @Test func atomicSymlinkSwapsAsAConfigMapVolumeDoesLoseNothing() throws {
        let namespace = try TestNamespace("configmap")
        let ipvs = try namespace.ipvs()
        let folder = try temporaryFolder("configmap")
        let manager = FileManager.default
        func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
        /// Publishes a version as the kubelet's AtomicWriter does.
        func publish(_ version: Int, _ files: [String: String]) throws {
            let directory = "..2026_12_07_\(version)"
            try manager.createDirectory(atPath: path(directory), withIntermediateDirectories: false)
            for (name, text) in files { try write(text, to: path(directory), as: name) }
            let old = (try? manager.destinationOfSymbolicLink(atPath: path("..data")))
            let shown = Set((try manager.contentsOfDirectory(atPath: folder)).filter { !$0.hasPrefix(".") })
            for name in files.keys where !shown.contains(name) {
                try manager.createSymbolicLink(atPath: path(name), withDestinationPath: "..data/\(name)")
            }
            try manager.createSymbolicLink(atPath: path("..data_tmp"), withDestinationPath: directory)
            guard rename(path("..data_tmp"), path("..data")) == 0 else { throw CocoaError(.fileWriteUnknown) }
            for name in shown where files[name] == nil { try manager.removeItem(atPath: path(name)) }
            if let old { try manager.removeItem(atPath: path(old)) }
        }
        let stable = service("stable", clusterIP: "10.96.71.1", endpoints: ["10.244.0.1"])
        try publish(0, ["stable.yaml": stable])
        let daemon = try Daemon(namespace: namespace, manifests: folder)
        defer { daemon.stop() }
        #expect(try converges(ipvs, to: [serviceKey("10.96.71.1")], within: 20), "\(daemon.output)")

        let sampler = VirtualServerSampler(ipvs) { [serviceKey("10.96.71.1")] }
        // Versions that add and drop a second Service by turns, and move the stable one's endpoints.
        for version in 1...8 {
            var files = ["stable.yaml": service("stable", clusterIP: "10.96.71.1", endpoints: ["10.244.0.\(version)"])]
            if version % 2 == 1 {
                files["extra.yaml"] = service("extra", clusterIP: "10.96.71.2", endpoints: ["10.244.1.1"])
            }
            try publish(version, files)
            let wanted: Set<VirtualServerKey> =
                version % 2 == 1 ? [serviceKey("10.96.71.1"), serviceKey("10.96.71.2")] : [serviceKey("10.96.71.1")]
            #expect(try converges(ipvs, to: wanted, within: 5), "version \(version): \(daemon.output)")
            // (A replaced endpoint may still drain at weight 0 until the next drain check.)
            let serving = try ipvs.realServers(of: serviceKey("10.96.71.1")).filter { $0.server.weight > 0 }
            #expect(serving.map(\.server.address.description) == ["10.244.0.\(version)"], "version \(version)")
        }
        let report = sampler.stop()
        #expect(report.misses.count == 0, "\(report)")
        #expect(report.longestGap <= 0.5, "\(report)")
    }
}

extension ManifestFaultTests {
    /// Files the daemon cannot read (mode 000, and a daemon without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, as
    /// root is not refused otherwise): at a restart, nothing an earlier process made is removed while one file cannot
    /// be read; while running, a file changed into one it cannot read holds every change back. Nothing is lost
    /// either way, and all lands once the files can be read.
    @Test func filesThatCannotBeReadLoseNothingAtARestartOrWhileRunning() throws {
        let namespace = try TestNamespace("unreadable")
        let ipvs = try namespace.ipvs()
        let folder = try temporaryFolder("unreadable")
        let ips = ["10.96.72.1", "10.96.72.2", "10.96.72.3"]
        var files: [String] = []
        for (index, ip) in ips.enumerated() {
            files.append(
                try write(
                    service("svc\(index)", clusterIP: ip, endpoints: ["10.244.0.1"]), to: folder, as: "\(index).yaml"))
        }
        let first = try Daemon(namespace: namespace, manifests: folder)
        let all = Set(ips.map(serviceKey))
        #expect(try converges(ipvs, to: all, within: 20), "\(first.output)")
        #expect(first.stop() == 0)

        // The restart: one file cannot be read.
        #expect(chmod(files[1], 0) == 0)
        var info = stat()
        #expect(stat(files[1], &info) == 0 && info.st_mode & 0o777 == 0, "mode \(String(info.st_mode, radix: 8))")
        let capDACOverride: Int32 = 1
        let capDACReadSearch: Int32 = 2
        let daemon = try Daemon(
            namespace: namespace, manifests: folder, arguments: ["--state-dir", first.stateDirectory],
            droppedCapabilities: [capDACOverride, capDACReadSearch])
        defer { daemon.stop() }
        let sampler = VirtualServerSampler(ipvs) { all }
        #expect(logSays(daemon, "1.yaml: cannot open: Permission denied"), "\(daemon.output)")
        hold(sampler, samples: 10)
        #expect(try ipvs.virtualServerKeys() == all)
        #expect(chmod(files[1], 0o644) == 0)
        #expect(logSays(daemon, "the source reads again"), "\(daemon.output)")

        // While running: a file changed, then made unreadable before the daemon read it.
        try write(
            service("svc2", clusterIP: "10.96.72.3", endpoints: ["10.244.0.1", "10.244.0.2"]), to: folder, as: "2.yaml")
        #expect(chmod(files[2], 0) == 0)
        try write(service("svc3", clusterIP: "10.96.72.4", endpoints: ["10.244.0.1"]), to: folder, as: "3.yaml")
        #expect(logSays(daemon, "2.yaml: cannot open: Permission denied"), "\(daemon.output)")
        hold(sampler, samples: 10)
        #expect(try ipvs.virtualServerKeys() == all, "every change waits, the new file's too")
        #expect(chmod(files[2], 0o644) == 0)
        #expect(try converges(ipvs, to: all.union([serviceKey("10.96.72.4")]), within: 5), "\(daemon.output)")
        #expect(
            try eventually(timeoutSeconds: 5) {
                try ipvs.realServers(of: serviceKey("10.96.72.3")).count == 2 ? true : nil
            }
                == true)
        let report = sampler.stop()
        #expect(report.misses.count == 0, "\(report)")
        #expect(report.longestGap <= 0.5, "\(report)")
    }
}
