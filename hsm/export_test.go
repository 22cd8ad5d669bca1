package hsm

// ModuleRefs is how many open Tokens share the module at path (0: not
// loaded), for the registry's test.
func ModuleRefs(path string) int {
	modules.Lock()
	defer modules.Unlock()
	if m, ok := modules.m[path]; ok {
		return m.refs
	}
	return 0
}
