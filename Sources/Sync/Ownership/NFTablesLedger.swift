import Foundation
import NetfilterModel
import Synchronization

/// ipvs-proxy's nftables tables as it last left them, with the ruleset's generation id at that moment, kept in
/// the state folder (`nftables.state`, root-only) so that a later run knows them without listing them.
///
/// A stand-in only while the generation id has not moved: any transaction by anyone moves it. Losing the file
/// costs one listing.
package final class NFTablesLedger: Sendable {
    package let directory: String
    package var file: String { (directory as NSString).appendingPathComponent("nftables.state") }
    private let cached = Mutex<NFTablesPart.State??>(nil)

    package init(directory: String) {
        self.directory = directory
    }

    /// The tables as last left, or `nil` when nothing (readable) was kept.
    package func load() -> NFTablesPart.State? {
        if let cached = cached.withLock({ $0 }) { return cached }
        let state = (try? String(contentsOfFile: file, encoding: .utf8)).flatMap(Self.parse)
        cached.withLock { $0 = .some(state) }
        return state
    }

    /// Keeps the tables as they are now, at `state.generation`. A ledger that cannot be written (the state folder
    /// full, read-only, or the process out of descriptors) is forgotten instead: it is a cache, losing it costs one
    /// listing, and a sync whose transaction the kernel took must not fail for it.
    package func save(_ state: NFTablesPart.State) {
        guard state.generation != nil, load() != state else { return }
        do {
            try StateFile.replace(file, in: directory) { Data(Self.render(state).utf8) }
            cached.withLock { $0 = .some(state) }
        } catch {
            forget()
        }
    }

    /// Forgets what was kept (after a refused transaction, or a cleanup), so that the next read lists the tables.
    package func forget() {
        try? FileManager.default.removeItem(atPath: file)
        cached.withLock { $0 = .some(nil) }
    }

    private static let header = "ipvs-proxy nftables state 2"

    /// `generation N`, then per table `table FAMILY DIGEST`, and per set with elements `set FAMILY NAME COUNT SUM`
    /// (its ``ElementsDigest``) followed by its COUNT elements, one a line.
    static func render(_ state: NFTablesPart.State) -> String {
        var text = header + "\ngeneration \(state.generation ?? 0)\n"
        for (family, table) in state.tables.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            text += "table \(family) \(table.skeletonDigest)\n"
            for set in table.setNames {
                let digest = table.digests[set] ?? .empty
                text += "set \(family) \(set) \(digest.count) \(digest.sum)\n"
                text += table.lines(of: set) + "\n"
            }
        }
        return text
    }

    /// Reads the tables back, each set's elements left as lines until they are needed.
    static func parse(_ text: String) -> NFTablesPart.State? {
        var rest = Substring(text)
        func line() -> Substring? {
            guard let end = rest.utf8.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
            defer { rest = rest[rest.index(after: end)...] }
            return rest[..<end]
        }
        guard line() == Substring(header), let generationLine = line(), generationLine.hasPrefix("generation "),
            let generation = UInt32(generationLine.dropFirst(11))
        else { return nil }
        var tables: [NFTFamily: (digest: String, sets: [String: (digest: ElementsDigest, lines: Substring)])] = [:]
        var current: NFTFamily?
        while let next = line() {
            let words = next.split(separator: " ")
            if words.count == 3, words[0] == "table", let family = NFTFamily(rawValue: String(words[1])) {
                tables[family] = (String(words[2]), [:])
                current = family
            } else if words.count == 5, words[0] == "set", let family = current, words[1] == family.rawValue,
                let count = Int(words[3]), count > 0, let sum = UInt64(words[4])
            {
                // The set's lines, taken whole, read only if a plan needs them; their digest is checked now (a
                // pass over the bytes, without making elements).
                let start = rest.startIndex
                var check: UInt64 = 0
                for _ in 0..<count {
                    guard let element = line() else { return nil }
                    check = check &+ ElementsDigest.hash(element)
                }
                guard check == sum else { return nil }
                let block = rest.base[start..<rest.startIndex].dropLast()
                tables[family]?.sets[String(words[2])] = (ElementsDigest(count: count, sum: sum), block)
            } else {
                return nil
            }
        }
        guard rest.isEmpty else { return nil }
        return NFTablesPart.State(
            tables: tables.mapValues { NFTablesPart.TableState(skeletonDigest: $0.digest, keptSets: $0.sets) },
            generation: generation)
    }
}
