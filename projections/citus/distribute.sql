-- Scale-out on Citus: run once on the coordinator after projections/migrations/*.sql.
-- Per-person tables are distributed by the pseudonym and co-located, so that one person's archive,
-- state, code and decisions live on one worker and a projector batch touches each worker once.
-- Area events are read by every evaluation: a reference table, replicated to every worker.
-- The projector announces code changes from the coordinator, where query APIs listen. Migration
-- 0009's delete/truncate triggers on person_code do not fire there: after deleting codes by hand on
-- Citus, run NOTIFY hc_code_changes, '*' on the coordinator.
SELECT create_distributed_table('person_state', 'subject');
SELECT create_distributed_table('event_archive', 'subject', colocate_with => 'person_state');
SELECT create_distributed_table('person_code', 'subject', colocate_with => 'person_state');
SELECT create_distributed_table('decision_log', 'subject', colocate_with => 'person_state');
SELECT create_reference_table('area_event_archive');
SELECT create_reference_table('consumer_offsets');
SELECT create_reference_table('dead_letters');
SELECT create_distributed_table('person_presence', 'subject', colocate_with => 'person_state');
SELECT create_reference_table('area_reevaluations');
