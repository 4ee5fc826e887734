#!/usr/bin/env python3
"""gen_world.py OUTDIR PORT_GDNSD PORT_KNOT PORT_NSD

Builds the demo world of benches/compare/dns.sh, deterministically (fixed seed):

  OUTDIR/networks.csv        a few thousand client networks (IPv4 /16 and /24 in
                             many /8s, IPv6 /32 and /48) placed at ~70 real city
                             coordinates on every continent, jittered by < 0.5°;
                             input of `boltz geoip build` (-> OUTDIR/world.mmdb)
  OUTDIR/boltz/example.com.toml          boltz zone (6 DCs, steered www + cdn)
  OUTDIR/gdnsd/config, gdnsd/zones/...   gdnsd 3.8, plugin_geoip, distance mode
  OUTDIR/knot/knot.conf, geo.conf, zone  knot 3.2, mod-geoip, geodb mode
  OUTDIR/nsd/nsd.conf, zone              nsd 4.6, static data only
  OUTDIR/checks.tsv          one check subnet per continent + its expected DC
  OUTDIR/sample.tsv          200 networks with their true nearest DC (agreement %)

All three geo servers get the same DCs and coordinates and read the same
world.mmdb. knot cannot sort by distance, so its geo.conf maps every
continent;country key of the CSV to the DC nearest to that country's mean city
position (computed here, great circle); per network this can differ from the
true nearest DC (e.g. US west vs east coast). checks.tsv only holds subnets
where both agree, with a clear margin between the nearest and second DC.
"""
import math
import os
import random
import sys

ORIGIN = "example.com."
DCS = [  # name, lat, lon, ipv4, ipv6  -- fra first: the fallback for unknown clients
    ("fra", 50.11, 8.68, "192.0.2.10", "2001:db8:f::10"),
    ("iad", 38.95, -77.45, "198.51.100.10", "2001:db8:a::10"),
    ("sjc", 37.36, -121.93, "198.51.100.20", "2001:db8:b::10"),
    ("sin", 1.35, 103.82, "203.0.113.10", "2001:db8:c::10"),
    ("syd", -33.87, 151.21, "203.0.113.20", "2001:db8:d::10"),
    ("gru", -23.43, -46.47, "203.0.113.30", "2001:db8:e::10"),
]
STEERED = ["www", "cdn"]
SOA = ("ns1.example.com.", "hostmaster.example.com.", 2026112101, 7200, 3600, 1209600, 300)
# Static data, identical in the four servers: (owner, type, rdata as zone-file text)
STATIC = [
    ("ns1", "A", "192.0.2.53"),
    ("ns2", "A", "198.51.100.53"),
    ("mail", "A", "192.0.2.25"),
    ("mail", "AAAA", "2001:db8:f::25"),
    ("v6", "AAAA", "2001:db8::25"),
    ("txt", "TXT", '"v=spf1 mx -all"'),
    ("static", "A", "192.0.2.80"),
    ("static", "AAAA", "2001:db8::80"),
    ("@", "MX", "10 mail.example.com."),
    ("@", "TXT", '"hello from the benchmark zone"'),
]

# city, country, continent, lat, lon
CITIES = [
    ("London", "GB", "EU", 51.51, -0.13), ("Paris", "FR", "EU", 48.86, 2.35),
    ("Berlin", "DE", "EU", 52.52, 13.40), ("Madrid", "ES", "EU", 40.42, -3.70),
    ("Rome", "IT", "EU", 41.90, 12.50), ("Warsaw", "PL", "EU", 52.23, 21.01),
    ("Stockholm", "SE", "EU", 59.33, 18.07), ("Amsterdam", "NL", "EU", 52.37, 4.90),
    ("Kyiv", "UA", "EU", 50.45, 30.52), ("Athens", "GR", "EU", 37.98, 23.73),
    ("Moscow", "RU", "EU", 55.76, 37.62), ("Lisbon", "PT", "EU", 38.72, -9.14),
    ("Dublin", "IE", "EU", 53.35, -6.26), ("Prague", "CZ", "EU", 50.08, 14.44),
    ("New York", "US", "NA", 40.71, -74.01), ("Chicago", "US", "NA", 41.88, -87.63),
    ("Atlanta", "US", "NA", 33.75, -84.39), ("Boston", "US", "NA", 42.36, -71.06),
    ("Dallas", "US", "NA", 32.78, -96.80), ("Denver", "US", "NA", 39.74, -104.99),
    ("Seattle", "US", "NA", 47.61, -122.33), ("Los Angeles", "US", "NA", 34.05, -118.24),
    ("Phoenix", "US", "NA", 33.45, -112.07), ("Toronto", "CA", "NA", 43.65, -79.38),
    ("Montreal", "CA", "NA", 45.50, -73.57), ("Vancouver", "CA", "NA", 49.28, -123.12),
    ("Mexico City", "MX", "NA", 19.43, -99.13), ("Guatemala", "GT", "NA", 14.63, -90.51),
    ("Sao Paulo", "BR", "SA", -23.55, -46.63), ("Rio", "BR", "SA", -22.91, -43.17),
    ("Buenos Aires", "AR", "SA", -34.60, -58.38), ("Santiago", "CL", "SA", -33.45, -70.67),
    ("Lima", "PE", "SA", -12.05, -77.04), ("Bogota", "CO", "SA", 4.71, -74.07),
    ("Caracas", "VE", "SA", 10.48, -66.90), ("Montevideo", "UY", "SA", -34.90, -56.16),
    ("Lagos", "NG", "AF", 6.52, 3.38), ("Cairo", "EG", "AF", 30.04, 31.24),
    ("Nairobi", "KE", "AF", -1.29, 36.82), ("Johannesburg", "ZA", "AF", -26.20, 28.05),
    ("Casablanca", "MA", "AF", 33.57, -7.59), ("Accra", "GH", "AF", 5.60, -0.19),
    ("Algiers", "DZ", "AF", 36.75, 3.06), ("Addis Ababa", "ET", "AF", 9.03, 38.74),
    ("Tokyo", "JP", "AS", 35.68, 139.69), ("Osaka", "JP", "AS", 34.69, 135.50),
    ("Seoul", "KR", "AS", 37.57, 126.98), ("Beijing", "CN", "AS", 39.90, 116.41),
    ("Shanghai", "CN", "AS", 31.23, 121.47), ("Hong Kong", "HK", "AS", 22.32, 114.17),
    ("Singapore", "SG", "AS", 1.29, 103.85), ("Jakarta", "ID", "AS", -6.21, 106.85),
    ("Bangkok", "TH", "AS", 13.76, 100.50), ("Manila", "PH", "AS", 14.60, 120.98),
    ("Mumbai", "IN", "AS", 19.08, 72.88), ("Delhi", "IN", "AS", 28.70, 77.10),
    ("Bangalore", "IN", "AS", 12.97, 77.59), ("Dubai", "AE", "AS", 25.20, 55.27),
    ("Tel Aviv", "IL", "AS", 32.09, 34.78), ("Istanbul", "TR", "AS", 41.01, 28.98),
    ("Karachi", "PK", "AS", 24.86, 67.01), ("Dhaka", "BD", "AS", 23.81, 90.41),
    ("Sydney", "AU", "OC", -33.87, 151.21), ("Melbourne", "AU", "OC", -37.81, 144.96),
    ("Brisbane", "AU", "OC", -27.47, 153.03), ("Perth", "AU", "OC", -31.95, 115.86),
    ("Auckland", "NZ", "OC", -36.85, 174.76), ("Wellington", "NZ", "OC", -41.29, 174.78),
    ("Suva", "FJ", "OC", -18.14, 178.44), ("Port Moresby", "PG", "OC", -9.44, 147.18),
]


def km(lat1, lon1, lat2, lon2):
    """Great-circle distance (haversine, R = 6371 km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, a)))


def ranked(lat, lon):
    """[(km, dc_name)] sorted nearest first."""
    return sorted((km(lat, lon, d[1], d[2]), d[0]) for d in DCS)


def gen_networks(rng):
    """[(cidr, lat, lon, country, continent)]: disjoint networks, ~3000 v4 + ~400 v6."""
    nets = []
    firsts = [a for a in range(1, 224) if a not in (0, 10, 127, 169, 172, 192, 198, 203, 100)]
    place = lambda: (lambda c: (c, c[3] + rng.uniform(-0.5, 0.5), c[4] + rng.uniform(-0.5, 0.5)))(rng.choice(CITIES))
    for a in firsts:                      # per /8: 4 /16s (even b) and 10 /24s (odd b)
        for b in rng.sample(range(0, 256, 2), 4):
            c, la, lo = place()
            nets.append((f"{a}.{b}.0.0/16", la, lo, c[1], c[2]))
        for _ in range(10):
            b, x = rng.randrange(1, 256, 2), rng.randrange(256)
            c, la, lo = place()
            nets.append((f"{a}.{b}.{x}.0/24", la, lo, c[1], c[2]))
    seen = set()
    for i in range(150):                  # IPv6 /32s under 2600::/12-ish, /48s under 2a00::/12
        c, la, lo = place()
        nets.append((f"26{i // 256:02x}:{(i * 37) % 65536:x}::/32", la, lo, c[1], c[2]))
    while len(seen) < 250:
        g2, g3 = rng.randrange(0x1000, 0xffff), rng.randrange(0, 0xffff)
        if (g2, g3) in seen:
            continue
        seen.add((g2, g3))
        c, la, lo = place()
        nets.append((f"2a0{rng.randrange(10)}:{g2:x}:{g3:x}::/48", la, lo, c[1], c[2]))
    # dedupe (random /24s may repeat)
    out, keys = [], set()
    for n in nets:
        if n[0] not in keys:
            keys.add(n[0])
            out.append(n)
    return out


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def zonefile(extra=""):
    """RFC 1035 zone text shared by gdnsd, knot and nsd."""
    mname, rname, serial, refresh, retry, expire, minimum = SOA
    lines = [
        "$TTL 300",
        f"@ IN SOA {mname} {rname} {serial} {refresh} {retry} {expire} {minimum}",
        "@ IN NS ns1.example.com.",
        "@ IN NS ns2.example.com.",
    ]
    lines += [f"{o} IN {t} {r}" for o, t, r in STATIC]
    return "\n".join(lines) + "\n" + extra


def main():
    outdir, p_gdnsd, p_knot, p_nsd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    rng = random.Random(20261121)
    nets = gen_networks(rng)
    mmdb = os.path.join(outdir, "world.mmdb")

    # --- CSV for `boltz geoip build`
    csv = ["network,latitude,longitude,country,continent"]
    csv += [f"{n},{la:.4f},{lo:.4f},{cc},{ct}" for n, la, lo, cc, ct in nets]
    write(os.path.join(outdir, "networks.csv"), "\n".join(csv) + "\n")

    # --- knot's country -> DC map (nearest DC to the country's mean city position)
    countries = {}
    for _, cc, ct, la, lo in CITIES:
        countries.setdefault((ct, cc), []).append((la, lo))
    country_dc = {}
    for key, pts in sorted(countries.items()):
        la = sum(p[0] for p in pts) / len(pts)
        lo = sum(p[1] for p in pts) / len(pts)
        country_dc[key] = ranked(la, lo)[0][1]

    # --- check subnets: one per continent, knot agrees, clear distance margin
    checks, by_ct = [], {}
    for n, la, lo, cc, ct in nets:
        if ":" in n or not n.endswith("/24"):
            continue
        r = ranked(la, lo)
        if r[0][1] == country_dc[(ct, cc)] and r[1][0] - r[0][0] > 1000 and ct not in by_ct:
            by_ct[ct] = (n, cc, ct, r[0][1])
    for ct in ["AF", "AS", "EU", "NA", "OC", "SA"]:
        n, cc, ct, dc = by_ct[ct]
        checks.append(f"{ct}\t{cc}\t{n}\t{dc}")
    for n, la, lo, cc, ct in nets:        # plus one IPv6 network (source /48)
        r = ranked(la, lo)
        if n.endswith("/48") and r[0][1] == country_dc[(ct, cc)] and r[1][0] - r[0][0] > 1000:
            checks.append(f"{ct}(v6)\t{cc}\t{n}\t{r[0][1]}")
            break
    write(os.path.join(outdir, "checks.tsv"), "\n".join(checks) + "\n")

    # --- agreement sample: 200 networks with true nearest and knot's country DC
    sample = rng.sample(nets, 200)
    first = lambda n: n.replace("/16", "/24") if ":" not in n else n.replace("/32", "/48")
    write(os.path.join(outdir, "sample.tsv"), "".join(
        f"{first(n)}\t{ranked(la, lo)[0][1]}\t{country_dc[(ct, cc)]}\n" for n, la, lo, cc, ct in sample))

    # --- boltz zone
    mname, rname, serial, refresh, retry, expire, minimum = SOA
    t = [
        f'origin = "{ORIGIN}"', "ttl = 300",
        f'soa = {{ mname = "{mname}", rname = "{rname}", serial = {serial}, refresh = {refresh}, '
        f"retry = {retry}, expire = {expire}, minimum = {minimum} }}",
        'ns = ["ns1.example.com.", "ns2.example.com."]', "",
        "[steering]",
        'temperature = "auto"        # no load feeds: utilisation 0 -> T = temperature_min',
        "temperature_min = 0.001     # cold enough that the nearest DC always wins the draw",
        "temperature_max = 1.0",
        "distance_scale_km = 2000",
        f"unknown_location = [{DCS[0][1]}, {DCS[0][2]}]   # unknown clients -> {DCS[0][0]}, like gdnsd/knot", "",
    ]
    for name, la, lo, v4, v6 in DCS:
        t += [f"[datacenters.{name}]", f"location = [{la}, {lo}]", "capacity = 1000000",
              f'ipv4 = ["{v4}"]', f'ipv6 = ["{v6}"]', ""]
    t.append("[records]")
    dcl = ", ".join(f'"{d[0]}"' for d in DCS)
    for s in STEERED:
        t.append(f'{s} = {{ type = "steered", datacenters = [{dcl}], ttl = 30 }}')
    grouped = {}
    for o, ty, r in STATIC:
        grouped.setdefault(o, []).append((ty, r))
    for o, lst in grouped.items():
        items = []
        for ty, r in lst:
            v = r.strip('"') if ty == "TXT" else r
            items.append(f'{{ type = "{ty}", values = ["{v}"] }}')
        t.append(f'"{o}" = [ ' + ", ".join(items) + " ]")
    write(os.path.join(outdir, "boltz", "example.com.toml"), "\n".join(t) + "\n")

    # --- gdnsd: plugin_geoip, city auto mode (auto_dc_coords), 1 UDP thread
    gd = os.path.join(outdir, "gdnsd")
    coords = "\n".join(f"          {d[0]} => [ {d[1]}, {d[2]} ]" for d in DCS)
    dcmap = "\n".join(f"          {d[0]} => {{ addrs_v4 => {d[3]}, addrs_v6 => {d[4]} }}" for d in DCS)
    res = "\n".join(f"""      {s} => {{
        map => world
        dcmap => {{
{dcmap}
        }}
      }}""" for s in STEERED)
    write(os.path.join(gd, "config"), f"""# gdnsd 3.8 config written by benches/compare/gen_world.py
options => {{
  listen => [ 127.0.0.1:{p_gdnsd} ]
  udp_threads => 1
  tcp_threads => 1
  run_dir => {gd}/run
  state_dir => {gd}/state
  zones_default_ttl => 300
}}
plugins => {{
  geoip => {{
    service_types => up          # no health checks: nothing leaves loopback
    maps => {{
      world => {{
        geoip2_db => {mmdb}
        datacenters => [ {", ".join(d[0] for d in DCS)} ]   # also the order for unknown clients
        auto_dc_coords => {{          # enables city-auto-mode (distance sorting)
{coords}
        }}
      }}
    }}
    resources => {{
{res}
    }}
  }}
}}
""")
    write(os.path.join(gd, "zones", "example.com"),
          zonefile("".join(f"{s} 30 DYNA geoip!{s}\n" for s in STEERED)))

    # --- knot: mod-geoip geodb mode keyed by continent;country
    kn = os.path.join(outdir, "knot")
    dc = {d[0]: d for d in DCS}
    geo = []
    for s in STEERED:
        geo.append(f"{s}.{ORIGIN}:")
        for (ct, cc), name in sorted(country_dc.items()):
            geo += [f'  - geo: "{ct};{cc}"', f"    A: {dc[name][3]}", f"    AAAA: {dc[name][4]}"]
    write(os.path.join(kn, "geo.conf"), "\n".join(geo) + "\n")
    # Names the module does not match are answered from the zone: the fra fallback.
    fallback = "".join(f"{s} 30 IN A {DCS[0][3]}\n{s} 30 IN AAAA {DCS[0][4]}\n" for s in STEERED)
    write(os.path.join(kn, "example.com.zone"), zonefile(fallback))
    kworkers = os.environ.get("KNOT_UDP_WORKERS", "1")
    write(os.path.join(kn, "knot.conf"), f"""# knot 3.2 config written by benches/compare/gen_world.py
server:
    rundir: {kn}
    listen: 127.0.0.1@{p_knot}
    udp-workers: {kworkers}
    tcp-workers: 1
    background-workers: 1
    edns-client-subnet: on
database:
    storage: {kn}
log:
  - target: stderr
    any: warning
mod-geoip:
  - id: world
    config-file: {kn}/geo.conf
    ttl: 30
    mode: geodb
    geodb-file: {mmdb}
    geodb-key: [ continent/code, country/iso_code ]
zone:
  - domain: {ORIGIN}
    storage: {kn}
    file: example.com.zone
    journal-content: none
    zonefile-sync: -1
    module: mod-geoip/world
""")

    # --- nsd: static only (same zone text as knot, its www/cdn = the fra fallback)
    ns = os.path.join(outdir, "nsd")
    write(os.path.join(ns, "example.com.zone"), zonefile(fallback))
    write(os.path.join(ns, "nsd.conf"), f"""# nsd 4.6 config written by benches/compare/gen_world.py
server:
    ip-address: 127.0.0.1@{p_nsd}
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "{ns}"
    database: ""
    pidfile: "{ns}/nsd.pid"
    xfrdfile: "{ns}/xfrd.state"
    xfrdir: "{ns}"
    zonelistfile: "{ns}/zone.list"
    verbosity: 0
    hide-version: yes
    rrl-ratelimit: 0             # RRL off: dnsperf is one client on 127.0.0.1
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: example.com
    zonefile: example.com.zone
""")
    print(f"{len(nets)} networks ({sum(':' in n[0] for n in nets)} IPv6), "
          f"{len(CITIES)} cities, {len(country_dc)} countries, {len(DCS)} DCs")


if __name__ == "__main__":
    main()
