/// One key of a section of `clusterd.yaml`: its name in the file and how its value lands in
/// the section's typed property. Each section lists its keys once (``ConfigSection/settings``);
/// the default is the property's initial value, and decoding and the unknown-key report both
/// come from that one list. Kept by hand rather than synthesized `Codable`: a missing key must
/// keep the default, durations are written in the key's unit (`_seconds`, `_ms`, `_days`),
/// and errors name the key as the file spells it.
public struct Setting<Section> {
    /// The key as the file spells it.
    public let key: String
    /// What may stand below the key (the keys of a nested section).
    let shape: KeyShape
    let decode: (inout Section, KeyedDecodingContainer<SettingKey>) throws -> Void

    /// A plain value (scalars, lists and maps of scalars).
    public static func value<T: Decodable>(_ key: String, _ path: WritableKeyPath<Section, T>) -> Setting {
        Setting(key: key, shape: .value) { section, c in
            if let v = try c.decodeIfPresent(T.self, forKey: SettingKey(key)) { section[keyPath: path] = v }
        }
    }

    /// A nested section.
    public static func section<T: ConfigSection>(_ key: String, _ path: WritableKeyPath<Section, T>) -> Setting {
        Setting(key: key, shape: T.shape) { section, c in
            if let v = try c.decodeIfPresent(T.self, forKey: SettingKey(key)) { section[keyPath: path] = v }
        }
    }

    /// A list of sections (each entry's keys are checked too).
    public static func list<T: ConfigSection>(_ key: String, _ path: WritableKeyPath<Section, [T]>) -> Setting {
        Setting(key: key, shape: T.shape) { section, c in
            if let v = try c.decodeIfPresent([T].self, forKey: SettingKey(key)) { section[keyPath: path] = v }
        }
    }

    /// One of a fixed set of words; another word is an error that lists them.
    public static func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ path: WritableKeyPath<Section, T>) -> Setting where T.RawValue == String {
        Setting(key: key, shape: .value) { section, c in
            guard let word = try c.decodeIfPresent(String.self, forKey: SettingKey(key)) else { return }
            guard let v = T(rawValue: word) else {
                let words = T.allCases.map(\.rawValue)
                throw DecodingError.dataCorruptedError(forKey: SettingKey(key), in: c,
                    debugDescription: "\"\(word)\" is not \(words.dropLast().joined(separator: ", ")) or \(words.last ?? "")")
            }
            section[keyPath: path] = v
        }
    }

    /// A duration written as a whole number of `unit`s (the unit is in the key's name).
    public static func duration(_ key: String, _ path: WritableKeyPath<Section, Duration>, unit: Duration) -> Setting {
        Setting(key: key, shape: .value) { section, c in
            guard let n = try c.decodeIfPresent(Int64.self, forKey: SettingKey(key)) else { return }
            guard n >= 0 else {
                throw DecodingError.dataCorruptedError(forKey: SettingKey(key), in: c, debugDescription: "\(n) must not be negative")
            }
            section[keyPath: path] = unit * n
        }
    }

    /// A string where an empty value (which YAML reads as null) means "off".
    public static func emptyWhenNull(_ key: String, _ path: WritableKeyPath<Section, String>) -> Setting {
        Setting(key: key, shape: .value) { section, c in
            guard c.contains(SettingKey(key)) else { return }
            section[keyPath: path] = try c.decodeNil(forKey: SettingKey(key)) ? "" : c.decode(String.self, forKey: SettingKey(key))
        }
    }
}

/// What may stand below a key: a value, or a section with its own keys.
public indirect enum KeyShape: Sendable {
    case value
    case section([(key: String, shape: KeyShape)])
}

/// A section of `clusterd.yaml`: a type with defaults and the list of its keys.
public protocol ConfigSection: Decodable {
    /// The defaults.
    init()
    /// Every key of the section, once.
    static var settings: [Setting<Self>] { get }
}

extension ConfigSection {
    /// Starts from the defaults; each key that is there replaces its default.
    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: SettingKey.self)
        for setting in Self.settings { try setting.decode(&self, c) }
    }

    /// The keys the section allows, nested sections included.
    static var shape: KeyShape { .section(settings.map { ($0.key, $0.shape) }) }
}

/// A key of the file, as a coding key.
public struct SettingKey: CodingKey {
    public let stringValue: String
    public var intValue: Int? { nil }
    init(_ key: String) { stringValue = key }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { nil }
}

extension Duration {
    /// One hour.
    public static let oneHour = Duration.seconds(3600)
    /// One day.
    public static let oneDay = Duration.seconds(86_400)
    /// Whole seconds (rounded down).
    public var wholeSeconds: Int64 { components.seconds }
    /// Whole milliseconds (rounded down).
    public var wholeMilliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
    /// Seconds as a `Double`.
    public var secondsValue: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
