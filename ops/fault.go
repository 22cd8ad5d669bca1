package ops

// Fault points are where a crash test kills the process (see fault_armed.go,
// built only with the keyhold_faults tag). The Runner passes them in every
// build; in a production build, without the tag, fault does nothing.

// Fault point names: before a step runs, after it returned, after the
// Runner recorded it.
func faultBefore(kind, step string) string    { return kind + ":before:" + step }
func faultAfter(kind, step string) string     { return kind + ":after:" + step }
func faultPersisted(kind, step string) string { return kind + ":persisted:" + step }
