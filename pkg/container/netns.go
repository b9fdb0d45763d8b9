package container

// NetnsDir is where named network namespaces live (iproute2's convention,
// which pkg/netfault's Spec.Netns follows).
const NetnsDir = "/run/netns"

// NetnsPrefix starts the name of every namespace nfslab attaches for a
// container, so cleanup can find them and nothing else.
const NetnsPrefix = "nfslab-ctr-"

// NetnsName is the named namespace of container ctr.
func NetnsName(ctr string) string {
	n := NetnsPrefix + ctr
	if len(n) > 64 { // pkg/netfault accepts at most 64 characters
		n = n[:64]
	}
	return n
}
