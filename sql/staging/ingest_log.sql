-- One row per table and landing partition: what was read, loaded and quarantined, and from which input.
create table if not exists _ingest_log (
    table_name varchar not null,
    partition_date date not null,
    input_hash varchar not null,
    rows_read bigint not null,
    rows_loaded bigint not null,
    rows_quarantined bigint not null,
    reasons json,
    source varchar,
    loaded_at timestamp not null default current_timestamp,
    primary key (table_name, partition_date)
)
