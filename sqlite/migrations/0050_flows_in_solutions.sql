-- The environment setting "create new flows in solutions" (spec 004):
-- '' while never set (then on exactly while the environment is linked to
-- an enterprise policy), 'on' or 'off' once an admin set it.
ALTER TABLE environments ADD COLUMN create_flows_in_solutions TEXT NOT NULL DEFAULT '';
