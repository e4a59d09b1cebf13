-- The privacy budget ledger and the stored releases. Append-only: rows are inserted, never updated.
-- One ledger row per charged release; a release id is charged at most once (primary key), and its
-- noisy values are stored in the same transaction as the charge, so a value is never shown uncharged.
create table if not exists _privacy_ledger (
    release_id varchar primary key,
    job varchar not null,
    release_name varchar not null,
    run_date date not null,
    dataset varchar not null,
    privacy_unit varchar not null,
    window_start date not null,
    window_end date not null,
    window_days integer not null,
    epsilon double not null,
    budget double not null,
    charged_at timestamp not null default current_timestamp
);
create table if not exists _privacy_releases (
    release_id varchar primary key,
    job varchar not null,
    release_name varchar not null,
    run_date date not null,
    input_hash varchar not null,
    dataset varchar not null,
    epsilon double not null,
    meta json not null,
    payload blob not null,
    created_at timestamp not null default current_timestamp
);
