//! The subcommands besides `serve`: `migrate`, `keys` and `signing-keys`.

use crate::{
    app::{api_keys, sessions},
    config::{CommonArgs, KeysCommand, SigningKeysArgs, SigningKeysCommand},
    startup::StartupError,
    store::Store,
};

pub async fn migrate(common: &CommonArgs) -> Result<(), StartupError> {
    let store = Store::connect(&common.database()).await?;
    store.migrate().await?;
    println!("migrations applied");
    store.close().await;
    Ok(())
}

pub async fn keys(common: &CommonArgs, command: &KeysCommand) -> Result<(), StartupError> {
    let store = Store::connect(&common.database()).await?;
    store.migrate().await?;
    match command {
        KeysCommand::Create { name, scopes } => {
            let issued = api_keys::issue_key(&store, name, scopes).await?;
            println!(
                "created key {} ({}) with scopes: {}",
                issued.key.id,
                issued.key.name,
                issued.key.scopes.join(" ")
            );
            println!("the key is shown only this once:");
            println!("{}", issued.secret);
        }
        KeysCommand::List => {
            println!(
                "{:<36}  {:<8}  {:<25}  {:<30}  SCOPES",
                "ID", "STATE", "CREATED", "NAME"
            );
            for key in api_keys::list_keys(&store).await? {
                let state = if key.revoke_time.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<36}  {:<8}  {:<25}  {:<30}  {}",
                    key.id,
                    state,
                    key.create_time
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    key.name,
                    key.scopes.join(" ")
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let key = api_keys::revoke_key(&store, id).await?;
            println!("revoked key {} ({})", key.id, key.name);
        }
    }
    store.close().await;
    Ok(())
}

/// `tenancy signing-keys rotate|list`.
pub async fn signing_keys(common: &CommonArgs, args: &SigningKeysArgs) -> Result<(), StartupError> {
    let database = common.database();
    let master = crate::startup::load_master_key(
        crate::store::sqlite_file(&database.url),
        &args.master_key,
    )?;
    let store = Store::connect(&database).await?;
    store.migrate().await?;
    let time = |time: chrono::DateTime<chrono::Utc>| {
        time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    match &args.command {
        SigningKeysCommand::Rotate {
            access_token_minutes,
        } => {
            let ahead = std::time::Duration::from_secs(access_token_minutes * 60);
            match sessions::rotate_signing_keys(&store, &master, ahead).await? {
                Some(kid) => println!(
                    "added signing key {kid}: published now, it signs in {access_token_minutes} minutes, \
                     and the current key retires then"
                ),
                None => println!("a successor key is already pending; nothing added"),
            }
        }
        SigningKeysCommand::List => {
            println!(
                "{:<43}  {:<10}  {:<20}  {:<20}  {:<20}  PUBLISHED UNTIL",
                "KID", "STATE", "CREATED", "SIGNS FROM", "RETIRED"
            );
            for key in sessions::list_signing_keys(&store, &master).await? {
                println!(
                    "{:<43}  {:<10}  {:<20}  {:<20}  {:<20}  {}",
                    key.kid,
                    key.state,
                    time(key.created_at),
                    time(key.signs_from),
                    key.retired_at.map(time).unwrap_or_else(|| "-".into()),
                    key.published_until.map(time).unwrap_or_else(|| "-".into()),
                );
            }
        }
    }
    store.close().await;
    Ok(())
}
