//! The schema, as numbered migrations. `PRAGMA user_version` (SQLite) or
//! the `twofactor_schema` table (PostgreSQL) holds the number of migrations
//! applied; each migration runs in its own transaction.
//!
//! PostgreSQL stores begin at version 9 ([`POSTGRESQL_BASE`], the same
//! tables as SQLite's version 9, in PostgreSQL's types); a migration after
//! 9 is written for both engines ([`LATER`]).
//!
//! Tables belong to the modules that use them: `accounts` (login, ratelimit,
//! account), `totp` and `totp_pending` (totp, account), `backup_codes`
//! (backup_codes), `policy` (policy), `recovery_codes` (recovery),
//! `source_failures` (ratelimit), `email`, `email_codes` and
//! `email_sends` (email), `devices` (devices). Secret columns hold values sealed by
//! `sealing` (through the store's `seal`/`unseal` SQL functions).

/// Migration `i` takes the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: accounts and the authenticator-app method.
    "CREATE TABLE accounts (
        user TEXT PRIMARY KEY NOT NULL,
        created INTEGER NOT NULL,
        preferred TEXT NOT NULL DEFAULT '',
        last_method TEXT NOT NULL DEFAULT '',
        last_login INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0,
        locked_until INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE totp (
        user TEXT PRIMARY KEY NOT NULL REFERENCES accounts(user) ON DELETE CASCADE,
        secret BLOB NOT NULL,
        created INTEGER NOT NULL,
        last_step INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE totp_pending (
        id TEXT PRIMARY KEY NOT NULL,
        user TEXT NOT NULL,
        secret BLOB NOT NULL,
        expires INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX totp_pending_user ON totp_pending(user);",
    // 2: backup codes (selector in clear, argon2id hash of the whole code).
    "CREATE TABLE backup_codes (
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL REFERENCES accounts(user) ON DELETE CASCADE,
        selector TEXT NOT NULL,
        hash TEXT NOT NULL,
        created INTEGER NOT NULL,
        used_at INTEGER
    ) STRICT;
    CREATE INDEX backup_codes_lookup ON backup_codes(user, selector);",
    // 3: the mandatory policy (one row) and recovery codes from resets.
    "CREATE TABLE policy (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        mandatory INTEGER NOT NULL,
        groups TEXT NOT NULL,
        from_date TEXT NOT NULL,
        updated_by TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE recovery_codes (
        user TEXT PRIMARY KEY NOT NULL,
        hash TEXT NOT NULL,
        created INTEGER NOT NULL,
        expires INTEGER NOT NULL,
        created_by TEXT NOT NULL
    ) STRICT;",
    // 4: a recovery code is claimed by the login that verified it and
    // consumed only when that login's enrolment completes.
    "ALTER TABLE recovery_codes ADD COLUMN claimed_by TEXT;
    ALTER TABLE recovery_codes ADD COLUMN claimed_until INTEGER NOT NULL DEFAULT 0;",
    // 5: failures per account and source (remote host or local terminal),
    // so that one source's guesses slow that source down, not the owner
    // elsewhere; accounts.failures stays the account-wide ceiling.
    "CREATE TABLE source_failures (
        user TEXT NOT NULL,
        source TEXT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        locked_until INTEGER NOT NULL DEFAULT 0,
        last INTEGER NOT NULL,
        PRIMARY KEY (user, source)
    ) STRICT;",
    // 6: backup codes' selectors and hashes are sealed (see sealing): BLOB
    // columns; rows from before are sealed when the store opens.
    "CREATE TABLE backup_codes_sealed (
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL REFERENCES accounts(user) ON DELETE CASCADE,
        selector BLOB NOT NULL,
        hash BLOB NOT NULL,
        created INTEGER NOT NULL,
        used_at INTEGER
    ) STRICT;
    INSERT INTO backup_codes_sealed(id, user, selector, hash, created, used_at)
        SELECT id, user, CAST(selector AS BLOB), CAST(hash AS BLOB), created, used_at
        FROM backup_codes;
    DROP TABLE backup_codes;
    ALTER TABLE backup_codes_sealed RENAME TO backup_codes;
    CREATE INDEX backup_codes_user ON backup_codes(user);",
    // 7: the email method: the confirmed address, the code last sent for a
    // login or a confirmation (sealed salted digest), and when codes were
    // sent (the hourly limit).
    "CREATE TABLE email (
        user TEXT PRIMARY KEY NOT NULL REFERENCES accounts(user) ON DELETE CASCADE,
        address BLOB NOT NULL,
        created INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE email_codes (
        user TEXT NOT NULL REFERENCES accounts(user) ON DELETE CASCADE,
        purpose TEXT NOT NULL,
        address BLOB NOT NULL,
        digest BLOB NOT NULL,
        expires INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (user, purpose)
    ) STRICT;
    CREATE TABLE email_sends (
        user TEXT NOT NULL,
        at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX email_sends_user ON email_sends(user, at);",
    // 8: trusted devices: identity and label sealed; trust ends at
    // `expires`, fixed when it was given.
    "CREATE TABLE devices (
        id TEXT NOT NULL,
        user TEXT NOT NULL REFERENCES accounts(user) ON DELETE CASCADE,
        identity BLOB NOT NULL,
        label BLOB NOT NULL,
        address BLOB NOT NULL,
        added INTEGER NOT NULL,
        last_used INTEGER NOT NULL,
        expires INTEGER NOT NULL,
        PRIMARY KEY (user, id)
    ) STRICT;",
    // 9: the user name column is `username` (`user` is a reserved word in
    // PostgreSQL); an account records the host of its last login (a
    // store shared by many hosts).
    "ALTER TABLE accounts RENAME COLUMN user TO username;
    ALTER TABLE totp RENAME COLUMN user TO username;
    ALTER TABLE totp_pending RENAME COLUMN user TO username;
    ALTER TABLE backup_codes RENAME COLUMN user TO username;
    ALTER TABLE recovery_codes RENAME COLUMN user TO username;
    ALTER TABLE source_failures RENAME COLUMN user TO username;
    ALTER TABLE email RENAME COLUMN user TO username;
    ALTER TABLE email_codes RENAME COLUMN user TO username;
    ALTER TABLE email_sends RENAME COLUMN user TO username;
    ALTER TABLE devices RENAME COLUMN user TO username;
    ALTER TABLE accounts ADD COLUMN last_host TEXT NOT NULL DEFAULT '';",
];

/// Migrations after version 9, for both engines: (SQLite, PostgreSQL).
pub const LATER: &[(&str, &str)] = &[
    // 10: email codes and sends by source (issue 18): a code is kept per
    // purpose and source, so a new one voids only that source's; a send
    // records its source and purpose, for the per-source limits. Codes in
    // flight are kept (source '' for a login's, 'twofactorctl' for a
    // confirmation); sends of the last hour count as the account's.
    (
        "CREATE TABLE email_codes_by_source (
            username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
            purpose TEXT NOT NULL,
            source TEXT NOT NULL,
            address BLOB NOT NULL,
            digest BLOB NOT NULL,
            expires INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (username, purpose, source)
        ) STRICT;
        INSERT INTO email_codes_by_source(username, purpose, source, address, digest, expires, attempts)
            SELECT username, purpose, CASE purpose WHEN 'confirm' THEN 'twofactorctl' ELSE '' END,
                   address, digest, expires, attempts
            FROM email_codes;
        DROP TABLE email_codes;
        ALTER TABLE email_codes_by_source RENAME TO email_codes;
        ALTER TABLE email_sends ADD COLUMN source TEXT NOT NULL DEFAULT '';
        ALTER TABLE email_sends ADD COLUMN purpose TEXT NOT NULL DEFAULT '';
        DROP INDEX email_sends_user;
        CREATE INDEX email_sends_user ON email_sends(username, source, at);
        CREATE INDEX email_sends_source ON email_sends(source, purpose, at);
        CREATE INDEX email_sends_at ON email_sends(at);",
        "ALTER TABLE email_codes ADD COLUMN source TEXT NOT NULL DEFAULT '';
        UPDATE email_codes SET source = 'twofactorctl' WHERE purpose = 'confirm';
        ALTER TABLE email_codes DROP CONSTRAINT email_codes_pkey;
        ALTER TABLE email_codes ADD PRIMARY KEY (username, purpose, source);
        ALTER TABLE email_sends ADD COLUMN source TEXT NOT NULL DEFAULT '';
        ALTER TABLE email_sends ADD COLUMN purpose TEXT NOT NULL DEFAULT '';
        DROP INDEX email_sends_user;
        CREATE INDEX email_sends_user ON email_sends(username, source, at);
        CREATE INDEX email_sends_source ON email_sends(source, purpose, at);
        CREATE INDEX email_sends_at ON email_sends(at);",
    ),
    // 11: a device keeps a keyed digest of the password it was trusted
    // under (sealed; see trusted_devices), and its trust ends when the
    // password changes. Trust given before recorded none: it ends here,
    // and the next login from each device asks for a code once.
    (
        "DELETE FROM devices;
        ALTER TABLE devices ADD COLUMN password_digest BLOB NOT NULL DEFAULT x'';",
        "DELETE FROM devices;
        ALTER TABLE devices ADD COLUMN password_digest BYTEA NOT NULL DEFAULT ''::bytea;",
    ),
    // 12: security-key SSH keys as a method (issue 20; rules/ssh_keys):
    // identity and label sealed.
    (
        "CREATE TABLE ssh_keys (
            id TEXT NOT NULL,
            username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
            identity BLOB NOT NULL,
            label BLOB NOT NULL,
            added INTEGER NOT NULL,
            last_used INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (username, id)
        ) STRICT;",
        "CREATE TABLE ssh_keys (
            id TEXT NOT NULL,
            username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
            identity BYTEA NOT NULL,
            label BYTEA NOT NULL,
            added BIGINT NOT NULL,
            last_used BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (username, id)
        );",
    ),
    // 13: FIDO2 security keys as a method (issue 20; rules/security_keys):
    // the credential id, its public key, the AAGUID and the label sealed;
    // the signature counter in the clear (it is compared and raised in the
    // writer's transaction).
    (
        "CREATE TABLE security_keys (
            id TEXT NOT NULL,
            username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
            credential BLOB NOT NULL,
            public_key BLOB NOT NULL,
            alg INTEGER NOT NULL,
            aaguid BLOB NOT NULL,
            label BLOB NOT NULL,
            sign_count INTEGER NOT NULL,
            added INTEGER NOT NULL,
            last_used INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (username, id)
        ) STRICT;",
        "CREATE TABLE security_keys (
            id TEXT NOT NULL,
            username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
            credential BYTEA NOT NULL,
            public_key BYTEA NOT NULL,
            alg BIGINT NOT NULL,
            aaguid BYTEA NOT NULL,
            label BYTEA NOT NULL,
            sign_count BIGINT NOT NULL,
            added BIGINT NOT NULL,
            last_used BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (username, id)
        );",
    ),
    // 14: a security key's credential keeps the relying party it was made
    // for when it is not this machine's (an OpenSSH security-key SSH key
    // registered with its key handle: `ssh:`).
    (
        "ALTER TABLE security_keys ADD COLUMN rp_id TEXT NOT NULL DEFAULT '';",
        "ALTER TABLE security_keys ADD COLUMN rp_id TEXT NOT NULL DEFAULT '';",
    ),
    // 15: the hosts of a fleet a verifier answers (rules/fleet_hosts), by
    // the SHA-256 of their certificate. Nothing secret: not sealed.
    (
        "CREATE TABLE fleet_hosts (
            name TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL UNIQUE,
            added INTEGER NOT NULL
        ) STRICT;",
        "CREATE TABLE fleet_hosts (
            name TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL UNIQUE,
            added BIGINT NOT NULL
        );",
    ),
];

/// The version PostgreSQL stores start at.
pub const POSTGRESQL_BASE_VERSION: i64 = 9;

/// A new PostgreSQL store at version 9: SQLite's tables with 64-bit
/// integers, bytes as `BYTEA`, identities for generated ids.
pub const POSTGRESQL_BASE: &str = "
    CREATE TABLE accounts (
        username TEXT PRIMARY KEY NOT NULL,
        created BIGINT NOT NULL,
        preferred TEXT NOT NULL DEFAULT '',
        last_method TEXT NOT NULL DEFAULT '',
        last_login BIGINT NOT NULL DEFAULT 0,
        failures BIGINT NOT NULL DEFAULT 0,
        locked_until BIGINT NOT NULL DEFAULT 0,
        last_host TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE totp (
        username TEXT PRIMARY KEY NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
        secret BYTEA NOT NULL,
        created BIGINT NOT NULL,
        last_step BIGINT NOT NULL
    );
    CREATE TABLE totp_pending (
        id TEXT PRIMARY KEY NOT NULL,
        username TEXT NOT NULL,
        secret BYTEA NOT NULL,
        expires BIGINT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX totp_pending_user ON totp_pending(username);
    CREATE TABLE backup_codes (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
        selector BYTEA NOT NULL,
        hash BYTEA NOT NULL,
        created BIGINT NOT NULL,
        used_at BIGINT
    );
    CREATE INDEX backup_codes_user ON backup_codes(username);
    CREATE TABLE policy (
        id BIGINT PRIMARY KEY CHECK (id = 1),
        mandatory BIGINT NOT NULL,
        groups TEXT NOT NULL,
        from_date TEXT NOT NULL,
        updated_by TEXT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE recovery_codes (
        username TEXT PRIMARY KEY NOT NULL,
        hash TEXT NOT NULL,
        created BIGINT NOT NULL,
        expires BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        claimed_by TEXT,
        claimed_until BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE source_failures (
        username TEXT NOT NULL,
        source TEXT NOT NULL,
        failures BIGINT NOT NULL DEFAULT 0,
        locked_until BIGINT NOT NULL DEFAULT 0,
        last BIGINT NOT NULL,
        PRIMARY KEY (username, source)
    );
    CREATE TABLE email (
        username TEXT PRIMARY KEY NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
        address BYTEA NOT NULL,
        created BIGINT NOT NULL
    );
    CREATE TABLE email_codes (
        username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
        purpose TEXT NOT NULL,
        address BYTEA NOT NULL,
        digest BYTEA NOT NULL,
        expires BIGINT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (username, purpose)
    );
    CREATE TABLE email_sends (
        username TEXT NOT NULL,
        at BIGINT NOT NULL
    );
    CREATE INDEX email_sends_user ON email_sends(username, at);
    CREATE TABLE devices (
        id TEXT NOT NULL,
        username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
        identity BYTEA NOT NULL,
        label BYTEA NOT NULL,
        address BYTEA NOT NULL,
        added BIGINT NOT NULL,
        last_used BIGINT NOT NULL,
        expires BIGINT NOT NULL,
        PRIMARY KEY (username, id)
    );
";

/// The version this build of the daemon writes.
pub fn current_version() -> i64 {
    (MIGRATIONS.len() + LATER.len()) as i64
}
