//! `cap user ...`, `cap token ...` and `cap auth rotate-key`: the gateway's accounts, managed
//! on the host that holds its data (the embedded default) or its database.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cap_identity::{IdentityStore, Role};

/// Where the gateway's accounts are.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The fleet's data directory (the gateway's store and keys are in `gateway/`).
    #[arg(long, env = "CAP_DATA_DIR", default_value = ".cap-data")]
    pub data_dir: PathBuf,
    /// The gateway's database when it is PostgreSQL (as `cap up --database-url`).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
}

impl StoreArgs {
    fn gateway_dir(&self) -> PathBuf {
        self.data_dir.join("gateway")
    }

    async fn open(&self) -> anyhow::Result<IdentityStore> {
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => {
                let file = self.gateway_dir().join("gateway.db");
                anyhow::ensure!(
                    file.exists(),
                    "no gateway store at {}: start the fleet once (`cap up`) or pass \
                     --data-dir / --database-url",
                    file.display()
                );
                cap_storage::sqlite_url(&file)
            }
        };
        Ok(IdentityStore::open(&url).await?)
    }
}

/// `cap user ...`.
#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a local account; prints a generated password unless `--password-stdin`.
    Add {
        /// The user's name.
        name: String,
        /// admin, developer or viewer.
        #[arg(long)]
        role: Role,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// The user's organisation.
        #[arg(long, default_value = cap_identity::DEFAULT_ORGANISATION)]
        organisation: String,
        /// Where the gateway's accounts are.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set a user's password (read from standard input) and sign them out everywhere.
    SetPassword {
        /// The user's name.
        name: String,
        /// Where the gateway's accounts are.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the users.
    List {
        /// Where the gateway's accounts are.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `cap token ...`.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token; it is printed once and stored only as a digest.
    Create {
        /// Whose token.
        #[arg(long)]
        user: String,
        /// The role it acts with (at most the user's).
        #[arg(long)]
        role: Role,
        /// Lifetime, e.g. 30d, 12h.
        #[arg(long, default_value = "30d")]
        expires: String,
        /// What it is for.
        #[arg(long, default_value = "")]
        label: String,
        /// Where the gateway's accounts are.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by its id.
    Revoke {
        /// The token's id (from `cap token list`).
        id: String,
        /// Where the gateway's accounts are.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// Where the gateway's accounts are.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `cap auth ...`.
#[derive(Debug, clap::Subcommand)]
pub enum AuthCommand {
    /// Sign new sessions with a new key; sessions signed by the old one stay valid until they
    /// expire.
    RotateKey {
        /// Where the gateway's accounts are.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs `cap user ...`.
pub async fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            name,
            role,
            password_stdin,
            organisation,
            store,
        } => {
            let (password, generated) = if password_stdin {
                (read_password()?, false)
            } else {
                (cap_identity::password::generate()?, true)
            };
            let user = store
                .open()
                .await?
                .add_user(&name, role, Some(&password), &organisation)
                .await?;
            println!(
                "Added {} ({}, organisation {}).",
                user.name, user.role, user.organisation
            );
            if generated {
                println!("Password (shown once): {password}");
            }
        }
        UserCommand::SetPassword { name, store } => {
            let password = read_password()?;
            let identity = store.open().await?;
            identity
                .set_password(&name, &password, &store.gateway_dir())
                .await?;
            let ended = identity.revoke_sessions_of(&name).await?;
            println!("Password of {name} changed; {ended} session(s) signed out.");
        }
        UserCommand::List { store } => {
            for user in store.open().await?.users().await? {
                println!(
                    "{:<24} {:<10} {:<16}{}",
                    user.name,
                    user.role.as_str(),
                    user.organisation,
                    if user.disabled { " disabled" } else { "" }
                );
            }
        }
    }
    Ok(())
}

/// Runs `cap token ...`.
pub async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            user,
            role,
            expires,
            label,
            store,
        } => {
            let lifetime = cap_identity::parse_lifetime(&expires)?;
            let issued = store
                .open()
                .await?
                .create_token(&user, role, &label, lifetime)
                .await?;
            println!(
                "Token {} for {} ({}), expires in {expires}. Shown once:",
                issued.token.id, issued.token.user, issued.token.role
            );
            println!("{}", issued.secret);
        }
        TokenCommand::Revoke { id, store } => {
            let token = store.open().await?.revoke_token(&id).await?;
            println!("Token {} of {} revoked.", token.id, token.user);
        }
        TokenCommand::List { user, store } => {
            for token in store.open().await?.tokens(user.as_deref()).await? {
                println!(
                    "{}  {:<24} {:<10} {}{}",
                    token.id,
                    token.user,
                    token.role.as_str(),
                    token.label,
                    if token.revoked_at_ms.is_some() {
                        " (revoked)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    Ok(())
}

/// Runs `cap auth ...`.
pub fn auth(command: AuthCommand) -> anyhow::Result<()> {
    match command {
        AuthCommand::RotateKey { store } => {
            let dir = store.gateway_dir();
            ensure_dir(&dir)?;
            let keys = cap_identity::keys::SessionKeys::rotate(&dir)?;
            println!(
                "New session key {} signs from now on; older sessions stay valid until they expire.",
                keys.current_kid()
            );
        }
    }
    Ok(())
}

fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        dir.is_dir(),
        "no gateway data in {}: start the fleet once (`cap up`) or pass --data-dir",
        dir.display()
    );
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    cap_identity::password::check(&password)?;
    Ok(password)
}
