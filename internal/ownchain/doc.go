// Package ownchain keeps an iptables chain that nfslab owns: created on
// demand, jumped to from rule 1 of a built-in chain (the only such jump,
// tagged with a comment, so that another tool's rules inserted at the top
// cannot hide it), removed with its jumps once it holds no rule. It also
// holds what every user of such a chain needs: the parser for lines of
// `iptables -S`, the choice of backend (nft or legacy) and an IPTables
// that runs inside a named network namespace.
//
// User: pkg/netfault (filter chains NFSLAB-OUTPUT/INPUT).
package ownchain
