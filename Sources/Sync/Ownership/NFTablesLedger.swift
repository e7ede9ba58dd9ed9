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

    /// Keeps the tables as they are now, at `state.generation`.
    package func save(_ state: NFTablesPart.State) throws {
        guard state.generation != nil, load() != state else { return }
        try StateFile.replace(file, in: directory) { Data(Self.render(state).utf8) }
        cached.withLock { $0 = .some(state) }
    }

    /// Forgets what was kept (after a refused transaction, or a cleanup), so that the next read lists the tables.
    package func forget() {
        try? FileManager.default.removeItem(atPath: file)
        cached.withLock { $0 = .some(nil) }
    }

    private static let header = "ipvs-proxy nftables state 1"

    /// One line per fact: `generation N`, `table FAMILY DIGEST`, then `FAMILY SET ELEMENT` per element.
    static func render(_ state: NFTablesPart.State) -> String {
        var lines = [header, "generation \(state.generation ?? 0)"]
        for (family, table) in state.tables.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            lines.append("table \(family) \(table.skeletonDigest)")
            for (set, elements) in table.elements.sorted(by: { $0.key < $1.key }) {
                lines += elements.sorted().map { "\(family) \(set) \($0.text)" }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func parse(_ text: String) -> NFTablesPart.State? {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true)[...]
        guard lines.popFirst() == Substring(header), let generationLine = lines.popFirst(),
            generationLine.hasPrefix("generation "), let generation = UInt32(generationLine.dropFirst(11))
        else { return nil }
        var tables: [NFTFamily: NFTablesPart.TableState] = [:]
        for line in lines {
            let words = line.split(separator: " ", maxSplits: 2)
            guard words.count == 3 else { return nil }
            if words[0] == "table" {
                guard let family = NFTFamily(rawValue: String(words[1])) else { return nil }
                tables[family] = NFTablesPart.TableState(skeletonDigest: String(words[2]), elements: [:])
            } else {
                guard let family = NFTFamily(rawValue: String(words[0])), tables[family] != nil else { return nil }
                tables[family]?.elements[String(words[1]), default: []].insert(SetElement(text: String(words[2])))
            }
        }
        return NFTablesPart.State(tables: tables, generation: generation)
    }
}
