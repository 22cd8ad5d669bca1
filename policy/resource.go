package policy

// The enterprise policy resource, as ARM answers it and takes it, is the
// root's (keyhold.PolicyResource), where the PolicyService contract that
// passes it lives.

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
