// Package app holds the cobra commands of the meshshift binary. Commands stay
// thin: they parse flags, build the logger and the manager, and call into the
// packages that do the work. It may import every meshshift package; none may
// import it.
package app
