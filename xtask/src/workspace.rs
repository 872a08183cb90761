//! Where things are: the workspace root, the cargo to call, the target directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::proc;

/// The workspace root (the parent of this crate's directory). `cargo run` sets
/// `CARGO_MANIFEST_DIR` at run time too; that one wins, because a binary cached in a target
/// directory shared by several checkouts was compiled with another checkout's path.
pub fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// The cargo that runs us (`cargo run` sets `CARGO`), so nested builds use the same
/// toolchain; plain `cargo` otherwise.
pub fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    cmd.current_dir(root());
    cmd
}

/// The target directory cargo uses for this workspace, as `cargo metadata` reports it,
/// so `CARGO_TARGET_DIR`, `build.target-dir` and the default all resolve the same way.
pub fn target_dir() -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]);
    let out = proc::run_bounded(&mut cmd, Duration::from_secs(120), None, None)?;
    if !out.success() {
        bail!("cargo metadata failed: {}", out.stderr.trim());
    }
    json_string_field(&out.stdout, "target_directory")
        .map(PathBuf::from)
        .context("cargo metadata output has no target_directory")
}

/// Extracts a top-level-ish string field from JSON without a JSON dependency: finds
/// `"key":` and decodes the string that follows. Good enough for `cargo metadata`,
/// whose `target_directory` key is unique.
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\"");
    let after_key = &json[json.find(&pat)? + pat.len()..];
    let after_colon = after_key.trim_start().strip_prefix(':')?.trim_start();
    let body = after_colon.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other), // \" \\ \/
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::json_string_field;

    #[test]
    fn finds_target_directory() {
        let json = r#"{"packages":[],"target_directory" : "/a \"b\"\\c\/d","version":1}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some("/a \"b\"\\c/d")
        );
        assert_eq!(json_string_field(json, "missing"), None);
        assert_eq!(json_string_field(r#"{"k":"unterminated"#, "k"), None);
        assert_eq!(json_string_field(r#"{"k":1}"#, "k"), None);
    }
}
