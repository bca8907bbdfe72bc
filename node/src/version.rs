//! What `tally --version` prints: the version, the commit the binary was
//! built from, and the formats it speaks. A node reads only a genesis, a
//! database and peers of the formats named here.

/// The genesis file's format (its fields, `deny_unknown_fields`).
pub const GENESIS_FORMAT: u32 = 1;
/// The wire format: p2p protocols `/tally/<chain>/…/1`, signing domains
/// `tally/…/v1`, borsh encodings (docs/wire-format.md).
pub const WIRE_FORMAT: u32 = 1;

/// The text of `tally --version`.
pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TALLY_GIT_COMMIT"),
    ")\nformats: genesis 1, database 1, wire 1, export schema 1"
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The literal in [`LONG`] follows the constants it names.
    #[test]
    fn the_version_text_names_the_formats_in_force() {
        let formats = format!(
            "formats: genesis {GENESIS_FORMAT}, database {}, wire {WIRE_FORMAT}, export schema {}",
            tally_ledger::store::FORMAT_VERSION,
            crate::export::schema::SCHEMA_VERSION
        );
        assert!(LONG.ends_with(&formats), "{LONG}");
        assert!(LONG.starts_with(env!("CARGO_PKG_VERSION")));
    }
}
