-- Certificate credentials (issue 11): a service principal's public X.509
-- certificate (DER), with which it signs client assertions. NULL for a
-- client secret. The certificate is sealed with the rest of the
-- credential (crypt/access.go), so one inserted in the database signs no
-- one in.
ALTER TABLE credentials ADD COLUMN certificate BLOB;
