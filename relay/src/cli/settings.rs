//! The settings file (`--config FILE`, `KEFU_CONFIG`) and `serve
//! --print-config`.
//!
//! The file is TOML whose keys are `serve`'s long flags (`listen`,
//! `data-dir`; `data_dir` too), a list (`trusted-proxy`) as an array.
//! Nothing here knows the settings one by one: a setting is any flag of
//! `serve` with an environment variable, and each value in the file is
//! installed as its flag's default before clap parses. So clap's own order
//! gives the precedence: flag, then environment, then file, then the
//! built-in default. The other subcommands take the keys they share with
//! `serve` that name the store (`data-dir`, `database-url`).

use std::any::TypeId;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Arg, ArgAction, ArgMatches, CommandFactory};

use super::Cli;

/// The flag that names the file, and its variable.
pub const FLAG: &str = "config";
const VARIABLE: &str = "KEFU_CONFIG";

/// The keys that subcommands other than `serve` and `check` take.
const STORE_KEYS: [&str; 2] = ["data-dir", "database-url"];

/// What `--print-config` shows in place of a secret.
const MASK: &str = "********";

/// Where the settings file is, if anywhere: `--config FILE` or
/// `--config=FILE` (before any `--`), else `KEFU_CONFIG`. Read ahead of
/// clap, which needs the file's values as defaults.
pub fn path(args: &[OsString]) -> Option<PathBuf> {
    let flag = format!("--{FLAG}");
    let mut args = args.iter().skip(1).map(|arg| arg.to_string_lossy());
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if arg == flag {
            return args.next().map(|path| PathBuf::from(path.into_owned()));
        }
        if let Some(path) = arg.strip_prefix(&format!("{flag}=")) {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os(VARIABLE).filter(|path| !path.is_empty()).map(PathBuf::from)
}

/// `command` (the whole command line) with the file's values as the
/// defaults of the flags they name. Fails on a key that is not a setting
/// of `serve`, or a value its flag does not take, naming the file and key.
pub fn install(command: clap::Command, path: &Path) -> Result<clap::Command> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the settings file {shown}"))?;
    let table: toml::Table = text.parse().with_context(|| format!("{shown} is not valid TOML"))?;
    let serve = serve(&command);
    let mut defaults = Vec::new();
    for (key, value) in &table {
        let arg = settings(serve).find(|arg| is_named(arg, key)).ok_or_else(|| {
            anyhow!("{shown}: unknown setting `{key}` (the settings are the flags of `kefu-relay serve --help`)")
        })?;
        let values = strings(value).with_context(|| format!("{shown}: `{key}` must be a string, number or boolean"))?;
        if values.len() != 1 && !takes_many(arg) {
            bail!("{shown}: `{key}` takes one value, not a list");
        }
        for value in &values {
            if let Err(why) = check(arg, value) {
                bail!("{shown}: `{key}` = {value:?}: {why}");
            }
        }
        defaults.push((long(arg).to_owned(), values));
    }
    Ok(with_defaults(command, &defaults, true))
}

/// `serve`'s effective settings as a settings file, secrets masked: what
/// `--print-config` prints. `matches` are the whole command line's.
pub fn effective(matches: &ArgMatches) -> String {
    let command = Cli::command();
    let matches = matches.subcommand_matches("serve").unwrap_or(matches);
    let mut table = toml::Table::new();
    for arg in settings(serve(&command)) {
        let Some(raw) = matches.get_raw(arg.get_id().as_str()) else { continue };
        let mut values: Vec<String> = raw.map(|value| value.to_string_lossy().into_owned()).collect();
        if arg.is_hide_env_values_set() {
            values = values.iter().map(|value| masked(arg, value)).collect();
        }
        let value = if takes_many(arg) {
            toml::Value::Array(values.into_iter().map(toml::Value::String).collect())
        } else {
            let Some(value) = values.into_iter().next() else { continue };
            scalar(arg, value)
        };
        table.insert(long(arg).to_owned(), value);
    }
    format!(
        "# kefu-relay serve's settings from its flags, environment and settings file;\n\
         # secrets masked. Unset ones are left out.\n{}",
        toml::to_string(&table).unwrap_or_default()
    )
}

/// Whether `arg` takes `value`, by clap's own parser for it: an error
/// found here names the file, one found later would only name the flag.
fn check(arg: &Arg, value: &str) -> Result<(), String> {
    let probe = clap::Command::new("kefu-relay").no_binary_name(true).arg(arg.clone());
    match probe.try_get_matches_from([format!("--{}={value}", long(arg))]) {
        Ok(_) => Ok(()),
        Err(error) => Err(match std::error::Error::source(&error) {
            Some(why) => why.to_string(),
            None => error.to_string().lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned(),
        }),
    }
}

fn serve(command: &clap::Command) -> &clap::Command {
    command.find_subcommand("serve").expect("kefu-relay has a serve subcommand")
}

/// `serve`'s settings: its flags that have an environment variable (each
/// has), but the one naming the file.
fn settings(serve: &clap::Command) -> impl Iterator<Item = &Arg> {
    serve.get_arguments().filter(|arg| arg.get_long().is_some_and(|long| long != FLAG) && arg.get_env().is_some())
}

fn long(arg: &Arg) -> &str {
    arg.get_long().unwrap_or_default()
}

/// A key names its flag (`data-dir`), in snake case too (`data_dir`), or
/// its field (`trusted-proxies` for `--trusted-proxy`).
fn is_named(arg: &Arg, key: &str) -> bool {
    let key = key.replace('_', "-");
    key == long(arg) || key == arg.get_id().as_str().replace('_', "-")
}

fn takes_many(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
}

/// A TOML value as the text clap would have been given: a scalar, or an
/// array of them.
fn strings(value: &toml::Value) -> Option<Vec<String>> {
    fn one(value: &toml::Value) -> Option<String> {
        match value {
            toml::Value::String(text) => Some(text.clone()),
            toml::Value::Integer(number) => Some(number.to_string()),
            toml::Value::Float(number) => Some(number.to_string()),
            toml::Value::Boolean(yes) => Some(yes.to_string()),
            _ => None,
        }
    }
    match value {
        toml::Value::Array(items) => items.iter().map(one).collect(),
        value => one(value).map(|text| vec![text]),
    }
}

/// A value as TOML of its flag's type: numbers and booleans bare.
fn scalar(arg: &Arg, value: String) -> toml::Value {
    let kind = arg.get_value_parser().type_id();
    let numeric = [TypeId::of::<u16>(), TypeId::of::<u32>(), TypeId::of::<u64>(), TypeId::of::<usize>()];
    if numeric.iter().any(|number| kind == *number)
        && let Ok(number) = value.parse::<i64>()
    {
        return toml::Value::Integer(number);
    }
    if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
        && let Ok(yes) = value.parse::<bool>()
    {
        return toml::Value::Boolean(yes);
    }
    toml::Value::String(value)
}

/// A secret as `--print-config` shows it: a URL with its password (and
/// any `password` parameter) masked, anything else masked whole.
fn masked(arg: &Arg, value: &str) -> String {
    if long(arg).ends_with("url")
        && let Ok(mut url) = url::Url::parse(value)
        && url.has_host()
    {
        if url.password().is_some() {
            let _ = url.set_password(Some(MASK));
        }
        if url.query_pairs().any(|(name, _)| name == "password") {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(name, value)| {
                    let value = if name == "password" { MASK.to_owned() } else { value.into_owned() };
                    (name.into_owned(), value)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return url.to_string();
    }
    MASK.to_owned()
}

/// `command` and its subcommands with `defaults` installed where they
/// have the flag: every one in `serve` and `check` (`all`, as at the top,
/// where `serve`'s flags are too), only the store's elsewhere.
fn with_defaults(mut command: clap::Command, defaults: &[(String, Vec<String>)], all: bool) -> clap::Command {
    for (name, values) in defaults {
        if !all && !STORE_KEYS.contains(&name.as_str()) {
            continue;
        }
        let found = command.get_arguments().find(|arg| arg.get_long() == Some(name.as_str()));
        if let Some(id) = found.map(|arg| arg.get_id().clone()) {
            command = command.mut_arg(id, |arg| arg.default_values(values.clone()));
        }
    }
    let subcommands: Vec<String> = command.get_subcommands().map(|sub| sub.get_name().to_owned()).collect();
    for name in subcommands {
        let all = all && matches!(name.as_str(), "serve" | "check");
        command = command.mut_subcommand(name, |sub| with_defaults(sub, defaults, all));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn the_file_is_named_by_the_flag_in_either_form() {
        assert_eq!(path(&args("kefu-relay serve --config a.toml")), Some(PathBuf::from("a.toml")));
        assert_eq!(path(&args("kefu-relay check --config=b.toml --listen x")), Some(PathBuf::from("b.toml")));
    }

    #[test]
    fn secrets_are_masked_but_a_url_keeps_its_host() {
        let command = Cli::command();
        let serve = serve(&command);
        let arg = |name: &str| settings(serve).find(|arg| long(arg) == name).unwrap();
        assert_eq!(
            masked(arg("database-url"), "postgres://kefu:secret@db.internal:5432/kefu?sslmode=require"),
            "postgres://kefu:********@db.internal:5432/kefu?sslmode=require"
        );
        assert_eq!(masked(arg("redis-url"), "redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            masked(arg("database-url"), "postgres://db/kefu?password=secret"),
            "postgres://db/kefu?password=********"
        );
        assert_eq!(masked(arg("admin-password"), "postgres://kefu:secret@db/kefu"), MASK);
        assert_eq!(masked(arg("database-url"), "not a url: secret"), MASK);
        assert_eq!(
            masked(arg("smtp-url"), "smtps://kefu:secret@smtp.example.com:465"),
            "smtps://kefu:********@smtp.example.com:465"
        );
    }
}
