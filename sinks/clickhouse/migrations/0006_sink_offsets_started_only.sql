-- From this version on the sink records only 'started' ranges: before inserting a batch, the
-- offsets it covers per partition. After a restart or a rebalance, liquidations read again at
-- offsets up to the last 'started' one are checked one by one against the table before they
-- are inserted, so the 1-minute aggregates never count a liquidation twice. 'stored' rows,
-- written by earlier versions after every insert of a batch, are still honoured (offsets up to
-- the last one are skipped). Placeholders: ${db}.

ALTER TABLE ${db}.sink_offsets
    COMMENT COLUMN stage 'started: a batch covering these offsets was about to be inserted; stored (earlier versions only): every row of the batch is in ClickHouse';

ALTER TABLE ${db}.sink_offsets
    MODIFY COMMENT 'Kafka offset ranges the sink began to store, per consumer group and partition (kept 7 days).';
