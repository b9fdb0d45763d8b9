// Package netfaulttest provides fakes that fail like the kernel for
// testing code built on netfault: an in-memory iptables (tables, chains,
// rule order, counters, iptables' own error messages and exit statuses), a
// netlink route handle (EEXIST, ESRCH) and a World that wires them into
// netfault.Options:
//
//	w := netfaulttest.NewWorld()
//	m, _ := netfault.NewManager(w.Options(clk, t.TempDir()))
//	f, _ := m.Apply(ctx, spec)
//	w.IPTables("", "iptables").BumpComment("nfslab:"+f.ID, 3, 180)
package netfaulttest
