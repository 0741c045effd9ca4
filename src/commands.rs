//! The subcommands besides `serve`: `migrate` and `keys`.

use crate::{
    app::api_keys,
    config::{CommonArgs, KeysCommand},
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
