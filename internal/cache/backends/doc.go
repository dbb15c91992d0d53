// Package backends is the table of cache backends: for each type= of a
// --cache-from / --cache-to value, how to parse its attributes and build
// its Importer or Exporter. It is a map literal, not a registry filled by
// init functions: adding a backend is one new package under cache/ and one
// line here.
//
// The table lives here rather than in package cache because the backends
// import cache; cache itself stays free of transports.
package backends
