import Foundation
import IPVS
import IPVSModel
import Testing

/// Runs busybox's `mount` (and `umount`) in the VM.
private func mount(_ arguments: String...) throws { try run("/bin/busybox", ["mount"] + arguments) }

@Suite("Faults of the kernel and the state folder", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct KernelFaultTests {
    /// Someone flushes the whole nftables ruleset, deletes the dummy link, deletes a virtual server: each is
    /// repaired within one sync period, and the other virtual servers stay meanwhile.
    @Test func whatOthersBreakIsRepairedWithinOneSyncPeriod() throws {
        let namespace = try TestNamespace("repair")
        let ipvs = try namespace.ipvs()
        let folder = try temporaryFolder("repair")
        let ips = ["10.96.80.1", "10.96.80.2", "10.96.80.3"]
        for (index, ip) in ips.enumerated() {
            try write(service("svc\(index)", clusterIP: ip, endpoints: ["10.244.0.1"]), to: folder, as: "\(index).yaml")
        }
        let period = 2.0
        let daemon = try Daemon(
            namespace: namespace, manifests: folder,
            arguments: ["--sync-period", "\(Int(period))s", "--cluster-cidr", "10.244.0.0/16"])
        defer { daemon.stop() }
        let all = Set(ips.map(serviceKey))
        func clusterIPElements() -> String {
            (try? namespace.exec(Tools.nft, ["list", "set", "ip", "ipvs-proxy", "cluster-ips"], allowFailure: true))?
                .output ?? ""
        }
        func dummyAddresses() -> String {
            (try? namespace.exec(Tools.ip, ["-4", "-o", "addr", "show", "dev", "kube-ipvs0"], allowFailure: true))?
                .output ?? ""
        }
        let programmed = {
            let (elements, addresses) = (clusterIPElements(), dummyAddresses())
            return ips.allSatisfy { elements.contains("\($0) . tcp . 80") && addresses.contains($0) }
        }
        #expect(
            try eventually(timeoutSeconds: 20) { try ipvs.virtualServerKeys() == all && programmed() ? true : nil }
                == true)
        let sampler = VirtualServerSampler(ipvs) { all }
        /// Breaks something, then checks that it is whole again once the first full resync that started after the
        /// break has ended (the second "synced" line in full mode from now: the first may have started before).
        func repairedByTheNextFullResync(_ label: String, breaking: () throws -> Void, whole: () throws -> Bool) throws
        {
            let fullSyncs = { daemon.output.components(separatedBy: "mode=full").count }
            let before = fullSyncs()
            let started = Date()
            try breaking()
            let resynced = eventually(timeoutSeconds: 4 * period) { fullSyncs() >= before + 2 ? true : nil }
            #expect(resynced == true, "\(label): \(daemon.output.suffix(2000))")
            #expect(try whole(), "\(label): \(daemon.output.suffix(2000))")
            print("\(label): repaired by the full resync that ended \(Date().timeIntervalSince(started)) s later")
        }

        try repairedByTheNextFullResync(
            "the flushed ruleset", breaking: { try namespace.exec(Tools.nft, ["flush", "ruleset"]) }, whole: programmed)
        try repairedByTheNextFullResync(
            "the deleted dummy link", breaking: { try namespace.ip("link", "del", "kube-ipvs0") }, whole: programmed)
        let report = sampler.stop()
        #expect(report.misses.count == 0, "\(report)")
        #expect(report.longestGap <= 0.5, "\(report)")
        try repairedByTheNextFullResync(
            "the deleted virtual server", breaking: { try ipvs.delete(serviceKey("10.96.80.2")) },
            whole: { try ipvs.virtualServerKeys() == all })
    }

    /// The state folder full, then read-only: ownership cannot be recorded, so changes wait and nothing is deleted
    /// meanwhile; they apply once the folder can be written again.
    @Test func aFullOrReadOnlyStateFolderLosesNothingAndChangesWait() throws {
        let namespace = try TestNamespace("state-folder")
        let ipvs = try namespace.ipvs()
        let state = try temporaryFolder("small-state")
        try mount("-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", state)
        defer { _ = try? run("/bin/busybox", ["umount", "-l", state], allowFailure: true) }
        let folder = try temporaryFolder("state-folder")
        for name in ["a", "b", "c"] {
            try write(
                service(name, clusterIP: "10.96.81.\(name.first!.asciiValue! - 96)", endpoints: ["10.244.0.1"]),
                to: folder, as: "\(name).yaml")
        }
        let daemon = try Daemon(namespace: namespace, manifests: folder, arguments: ["--state-dir", state])
        defer { daemon.stop() }
        let abc: Set = [serviceKey("10.96.81.1"), serviceKey("10.96.81.2"), serviceKey("10.96.81.3")]
        #expect(
            try eventually(timeoutSeconds: 20) { try ipvs.virtualServerKeys() == abc ? true : nil } == true,
            "\(daemon.output)")

        /// Makes the folder unwritable, changes the input (d added, c removed), checks that nothing changes in the
        /// kernel while the daemon fails to record ownership, then makes it writable and checks the change lands.
        func changeWhileUnwritable(_ label: String, break breakFolder: () throws -> Void, mend: () throws -> Void)
            throws
        {
            try breakFolder()
            let failures = daemon.output.components(separatedBy: "sync failed").count
            let sampler = VirtualServerSampler(ipvs) { abc }
            try write(service("d", clusterIP: "10.96.81.4", endpoints: ["10.244.0.1"]), to: folder, as: "d.yaml")
            try FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent("c.yaml"))
            let failed = eventually(timeoutSeconds: 10) {
                daemon.output.components(separatedBy: "sync failed").count >= failures + 3 ? true : nil
            }
            #expect(failed == true, "\(label): \(daemon.output.suffix(2000))")
            #expect(try ipvs.virtualServerKeys() == abc, "\(label): the change waits")
            let report = sampler.stop()
            #expect(report.misses.count == 0, "\(label): \(report)")
            #expect(report.longestGap <= 0.5, "\(label): \(report)")
            try mend()
            let applied: Set = [serviceKey("10.96.81.1"), serviceKey("10.96.81.2"), serviceKey("10.96.81.4")]
            #expect(
                try eventually(timeoutSeconds: 5) { try ipvs.virtualServerKeys() == applied ? true : nil } == true,
                "\(label)")
            // Back as it was, for the next fault.
            try FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent("d.yaml"))
            try write(service("c", clusterIP: "10.96.81.3", endpoints: ["10.244.0.1"]), to: folder, as: "c.yaml")
            #expect(
                try eventually(timeoutSeconds: 5) { try ipvs.virtualServerKeys() == abc ? true : nil } == true,
                "\(label)")
        }

        let filler = (state as NSString).appendingPathComponent("filler")
        try changeWhileUnwritable(
            "full",
            break: {
                // Until the tmpfs refuses: whatever a sync would write next has no room.
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: filler).creatingFile())
                let chunk = Data(count: 4096)
                while (try? handle.write(contentsOf: chunk)) != nil {}
                try? handle.close()
            },
            mend: { try FileManager.default.removeItem(atPath: filler) })
        try changeWhileUnwritable(
            "read-only",
            // A read-only bind mount over the folder: the daemon's open lock file keeps the tmpfs itself from being
            // remounted read-only (EBUSY), but every new write through the path is refused (EROFS).
            break: {
                try mount("-o", "bind", state, state)
                try mount("-o", "remount,bind,ro", state)
            },
            mend: { try run("/bin/busybox", ["umount", state]) })
    }
}

extension URL {
    /// This file, made empty first.
    fileprivate func creatingFile() -> URL {
        // One that cannot be made fails the opening that follows, with its errno.
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        return self
    }
}
