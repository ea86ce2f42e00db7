// Compile and run HQL queries with Hibernate 3.6.10.Final, the version OMERO 5.6
// runs, against omero.hbm.xml on an in-memory HSQLDB (docs/hql.rst).
//
// Usage: java -cp CLASSPATH HqlCheck MAPPING.hbm.xml < CASES > RESULTS.json
//
// CASES is UTF-8, one directive per line, the directive word then one space:
//   SQL <statement>           a seed statement, run in order before any case
//   CASE <name>               starts a case
//   HQL <query>               the case's query (one line)
//   PARAM <name> <type> <v>   a named parameter; type is long, int, double,
//                             string or longlist (v comma-separated)
//
// Each case is compiled twice and run once:
//   1. translated to SQL by a SessionFactory with PostgreSQLDialect, the base of
//      the dialect OMERO 5.6 runs (omero-model ome/util/PostgresqlDialect.java:15,
//      omero-server hibernate.properties omero.db.dialect). Hibernate rejects a
//      bad query here, as the server would.
//   2. run on HSQLDB through a second SessionFactory with HSQLDialect (the
//      schema comes from the same mapping, hbm2ddl), returning rows.
//
// Prints one JSON object: versions, timings and, per case, ok, the stage that
// failed and its error, the PostgreSQL SQL, Hibernate's return types, the named
// parameters and the rows (timestamps as milliseconds since the epoch, as
// omero.rtypes.rtime; an entity as an object of its non-null scalar fields and
// its fetched collections as lists of member ids).
// Exit status 0 when every case was attempted (a rejected query is a result,
// not a harness failure), 2 when the mapping or a seed statement is refused,
// 64 on bad usage or input.

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.Date;
import java.util.List;
import java.util.Map;
import java.util.TimeZone;
import java.util.TreeMap;

import org.hibernate.Hibernate;
import org.hibernate.Query;
import org.hibernate.Session;
import org.hibernate.SessionFactory;
import org.hibernate.Transaction;
import org.hibernate.cfg.Configuration;
import org.hibernate.engine.SessionFactoryImplementor;
import org.hibernate.engine.query.HQLQueryPlan;
import org.hibernate.type.Type;

public final class HqlCheck {

    private static final String DB_URL = "jdbc:hsqldb:mem:omero";

    /** One query to check. */
    private static final class Case {
        final String name;
        String hql;
        final List<String[]> params = new ArrayList<>();

        Case(String name) {
            this.name = name;
        }
    }

    private HqlCheck() {
    }

    public static void main(String[] args) throws IOException {
        // Timestamps come back as epoch milliseconds; seeds are written in UTC.
        TimeZone.setDefault(TimeZone.getTimeZone("UTC"));
        if (args.length != 1) {
            System.err.println("usage: HqlCheck MAPPING.hbm.xml < CASES");
            System.exit(64);
        }
        List<String> seeds = new ArrayList<>();
        List<Case> cases = new ArrayList<>();
        readInput(seeds, cases);

        long t0 = System.nanoTime();
        SessionFactory run = null;
        SessionFactory compile = null;
        try {
            // One Configuration parses the mapping once; each factory takes
            // the dialect set when it is built.
            Configuration cfg = configure(args[0]);
            run = cfg.setProperty("hibernate.dialect", "org.hibernate.dialect.HSQLDialect")
                    .setProperty("hibernate.hbm2ddl.auto", "create")
                    .buildSessionFactory();
            compile = cfg.setProperty("hibernate.dialect", "org.hibernate.dialect.PostgreSQLDialect")
                    .setProperty("hibernate.hbm2ddl.auto", "none")
                    .setProperty("hibernate.temp.use_jdbc_metadata_defaults", "false")
                    .buildSessionFactory();
        } catch (RuntimeException e) {
            die("the mapping is refused", e);
        }
        long tFactories = System.nanoTime();
        seed(run, seeds);
        long tSeeded = System.nanoTime();

        StringBuilder out = new StringBuilder();
        // Debian's build leaves Version.getVersionString() unset; the jar's
        // manifest carries the release.
        out.append("{\"hibernate\":").append(json(org.hibernate.Version.class.getPackage().getImplementationVersion()));
        out.append(",\"compile_dialect\":").append(json(((SessionFactoryImplementor) compile).getDialect().getClass().getName()));
        out.append(",\"run_dialect\":").append(json(((SessionFactoryImplementor) run).getDialect().getClass().getName()));
        out.append(",\"cases\":[");
        boolean first = true;
        for (Case c : cases) {
            if (!first) {
                out.append(',');
            }
            first = false;
            out.append(check(compile, run, c));
        }
        long tDone = System.nanoTime();
        out.append("],\"factories_ms\":").append((tFactories - t0) / 1000000);
        out.append(",\"seed_ms\":").append((tSeeded - tFactories) / 1000000);
        out.append(",\"cases_ms\":").append((tDone - tSeeded) / 1000000);
        out.append("}");
        PrintStream stdout = new PrintStream(System.out, true, "UTF-8");
        stdout.println(out);
        run.close();
        compile.close();
    }

    private static Configuration configure(String mapping) {
        return new Configuration()
                .setProperty("hibernate.connection.driver_class", "org.hsqldb.jdbcDriver")
                .setProperty("hibernate.connection.url", DB_URL)
                .setProperty("hibernate.connection.username", "sa")
                .setProperty("hibernate.connection.password", "")
                .setProperty("hibernate.connection.pool_size", "1")
                .setProperty("hibernate.default_entity_mode", "dynamic-map")
                // as omero-server's hibernate.properties
                .setProperty("hibernate.bytecode.use_reflection_optimizer", "false")
                .addFile(mapping);
    }

    private static void readInput(List<String> seeds, List<Case> cases) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        Case current = null;
        String line;
        int n = 0;
        while ((line = in.readLine()) != null) {
            n++;
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            int sp = line.indexOf(' ');
            String word = sp < 0 ? line : line.substring(0, sp);
            String rest = sp < 0 ? "" : line.substring(sp + 1);
            switch (word) {
                case "SQL":
                    seeds.add(rest);
                    break;
                case "CASE":
                    current = new Case(rest);
                    cases.add(current);
                    break;
                case "HQL":
                    requireCase(current, n);
                    current.hql = rest;
                    break;
                case "PARAM": {
                    requireCase(current, n);
                    String[] p = rest.split(" ", 3);
                    if (p.length != 3) {
                        bad("line " + n + ": PARAM needs a name, a type and a value");
                    }
                    current.params.add(p);
                    break;
                }
                default:
                    bad("line " + n + ": unknown directive " + word);
            }
        }
        for (Case c : cases) {
            if (c.hql == null) {
                bad("case " + c.name + " has no HQL line");
            }
        }
    }

    private static void requireCase(Case c, int line) {
        if (c == null) {
            bad("line " + line + ": HQL or PARAM before any CASE");
        }
    }

    private static void seed(SessionFactory sf, List<String> seeds) {
        Session s = sf.openSession();
        Transaction tx = s.beginTransaction();
        for (String sql : seeds) {
            try {
                s.createSQLQuery(sql).executeUpdate();
            } catch (RuntimeException e) {
                die("seed statement refused: " + sql, e);
            }
        }
        tx.commit();
        s.close();
    }

    /** Compile with the PostgreSQL factory, run with the HSQLDB one; JSON of the result. */
    private static String check(SessionFactory compile, SessionFactory run, Case c) {
        StringBuilder r = new StringBuilder();
        r.append("{\"name\":").append(json(c.name)).append(",\"hql\":").append(json(c.hql));
        long t0 = System.nanoTime();
        HQLQueryPlan plan;
        try {
            plan = ((SessionFactoryImplementor) compile).getQueryPlanCache()
                    .getHQLQueryPlan(c.hql, false, Collections.emptyMap());
        } catch (RuntimeException e) {
            return failed(r, "compile", e);
        }
        r.append(",\"sql\":").append(jsonStrings(plan.getSqlStrings()));
        Type[] types = plan.getReturnMetadata() == null ? null : plan.getReturnMetadata().getReturnTypes();
        r.append(",\"return_types\":[");
        if (types != null) {
            for (int i = 0; i < types.length; i++) {
                r.append(i == 0 ? "" : ",").append(json(types[i].getName()));
            }
        }
        List<String> names = new ArrayList<>();
        for (Object n : plan.getParameterMetadata().getNamedParameterNames()) {
            names.add(n.toString());
        }
        Collections.sort(names);
        r.append("],\"named_parameters\":").append(jsonStrings(names.toArray(new String[0])));
        List<?> rows;
        Session s = run.openSession();
        try {
            Query q = s.createQuery(c.hql);
            for (String[] p : c.params) {
                bind(q, p[0], p[1], p[2]);
            }
            rows = q.list();
        } catch (RuntimeException e) {
            s.close();
            return failed(r, "run", e);
        }
        r.append(",\"rows\":[");
        for (int i = 0; i < rows.size(); i++) {
            Object row = rows.get(i);
            Object[] cells = row instanceof Object[] ? (Object[]) row : new Object[] {row};
            r.append(i == 0 ? "[" : ",[");
            for (int j = 0; j < cells.length; j++) {
                r.append(j == 0 ? "" : ",").append(value(cells[j]));
            }
            r.append(']');
        }
        s.close();
        r.append("],\"ok\":true,\"ms\":").append((System.nanoTime() - t0) / 1000000).append('}');
        return r.toString();
    }

    private static void bind(Query q, String name, String type, String v) {
        switch (type) {
            case "long":
                q.setParameter(name, Long.valueOf(v));
                break;
            case "int":
                q.setParameter(name, Integer.valueOf(v));
                break;
            case "double":
                q.setParameter(name, Double.valueOf(v));
                break;
            case "string":
                q.setParameter(name, v);
                break;
            case "timestamp": // ms since the epoch, as omero-py's rtime sends it
                q.setParameter(name, new java.sql.Timestamp(Long.valueOf(v)));
                break;
            case "longlist": {
                List<Long> ids = new ArrayList<>();
                for (String part : v.split(",")) {
                    ids.add(Long.valueOf(part.trim()));
                }
                q.setParameterList(name, ids);
                break;
            }
            default:
                throw new IllegalArgumentException("unknown parameter type " + type + " for :" + name);
        }
    }

    private static String failed(StringBuilder r, String stage, RuntimeException e) {
        r.append(",\"ok\":false,\"stage\":").append(json(stage));
        r.append(",\"error\":").append(json(describe(e))).append('}');
        return r.toString();
    }

    /** Exception class and message, with the causes' messages (the SQL errors). */
    private static String describe(Throwable e) {
        StringBuilder sb = new StringBuilder(e.getClass().getName()).append(": ").append(e.getMessage());
        for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
            sb.append(" | caused by ").append(c.getClass().getName()).append(": ").append(c.getMessage());
        }
        return sb.toString();
    }

    /** JSON of one projected value; an entity (a Map in dynamic-map mode) as its scalar fields. */
    private static String value(Object v) {
        if (v == null) {
            return "null";
        }
        if (v instanceof Long || v instanceof Integer || v instanceof Short || v instanceof Byte) {
            return v.toString();
        }
        if (v instanceof Double || v instanceof Float) {
            double d = ((Number) v).doubleValue();
            return Double.isFinite(d) ? Double.toString(d) : json(Double.toString(d));
        }
        if (v instanceof Boolean) {
            return v.toString();
        }
        if (v instanceof Date) {
            return Long.toString(((Date) v).getTime());
        }
        if (v instanceof List) {
            StringBuilder sb = new StringBuilder("[");
            for (Object x : (List<?>) v) {
                sb.append(sb.length() == 1 ? "" : ",").append(value(x));
            }
            return sb.append(']').toString();
        }
        if (v instanceof Map) {
            Map<String, Object> fields = new TreeMap<>();
            // Scalars that are set, and collections already loaded (by a
            // fetch join) as the ids of their members, in collection order;
            // references to other entities and components are left out.
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                Object x = e.getValue();
                if (x instanceof Collection) {
                    if (Hibernate.isInitialized(x)) {
                        List<Object> ids = new ArrayList<>();
                        for (Object member : (Collection<?>) x) {
                            ids.add(member instanceof Map ? ((Map<?, ?>) member).get("id") : member);
                        }
                        fields.put(e.getKey().toString(), ids);
                    }
                } else if (x != null && !(x instanceof Map)) {
                    fields.put(e.getKey().toString(), x);
                }
            }
            StringBuilder sb = new StringBuilder("{");
            for (Map.Entry<String, Object> e : fields.entrySet()) {
                sb.append(sb.length() == 1 ? "" : ",").append(json(e.getKey())).append(':').append(value(e.getValue()));
            }
            return sb.append('}').toString();
        }
        return json(v.toString());
    }

    private static String jsonStrings(String[] items) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < items.length; i++) {
            sb.append(i == 0 ? "" : ",").append(json(items[i]));
        }
        return sb.append(']').toString();
    }

    private static String json(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder sb = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char ch = s.charAt(i);
            switch (ch) {
                case '"':
                    sb.append("\\\"");
                    break;
                case '\\':
                    sb.append("\\\\");
                    break;
                case '\n':
                    sb.append("\\n");
                    break;
                case '\r':
                    sb.append("\\r");
                    break;
                case '\t':
                    sb.append("\\t");
                    break;
                default:
                    if (ch < 0x20) {
                        sb.append(String.format("\\u%04x", (int) ch));
                    } else {
                        sb.append(ch);
                    }
            }
        }
        return sb.append('"').toString();
    }

    private static void bad(String message) {
        System.err.println("HqlCheck: " + message);
        System.exit(64);
    }

    private static void die(String message, Throwable e) {
        System.err.println("HqlCheck: " + message + ": " + describe(e));
        System.exit(2);
    }
}
