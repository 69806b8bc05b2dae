import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.List;
import org.jacoco.core.analysis.Analyzer;
import org.jacoco.core.analysis.CoverageBuilder;
import org.jacoco.core.analysis.IBundleCoverage;
import org.jacoco.core.tools.ExecFileLoader;
import org.jacoco.report.IReportGroupVisitor;
import org.jacoco.report.IReportVisitor;
import org.jacoco.report.xml.XMLFormatter;

/**
 * Writes JaCoCo's XML report of an execution data file, one group per Maven module, named by
 * the module's directory. Usage: EXEC_FILE REPORT_XML MODULE_DIR...
 *
 * <p>The system's JaCoCo has neither its Maven plugin nor its command-line tool; this is what
 * the command-line tool's `report` does, through the same library.
 */
public final class CapJacocoReport {
    public static void main(String[] args) throws IOException {
        ExecFileLoader loader = new ExecFileLoader();
        loader.load(new File(args[0]));
        // Every module is analysed before the report is opened: a class file JaCoCo cannot
        // read leaves no report at all rather than half of one.
        List<IBundleCoverage> bundles = new ArrayList<>();
        for (int i = 2; i < args.length; i++) {
            CoverageBuilder builder = new CoverageBuilder();
            new Analyzer(loader.getExecutionDataStore(), builder)
                    .analyzeAll(new File(args[i], "target/classes"));
            bundles.add(builder.getBundle(args[i]));
        }
        try (OutputStream out = new FileOutputStream(args[1])) {
            IReportVisitor report = new XMLFormatter().createVisitor(out);
            report.visitInfo(loader.getSessionInfoStore().getInfos(),
                    loader.getExecutionDataStore().getContents());
            IReportGroupVisitor root = report.visitGroup("modules");
            for (IBundleCoverage bundle : bundles) {
                root.visitBundle(bundle, null);
            }
            report.visitEnd();
        }
    }
}
