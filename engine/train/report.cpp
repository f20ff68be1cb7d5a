#include "engine/train/report.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "engine/atomic_file.h"
#include "engine/error.h"

namespace tl::train {

// ---- progress ---------------------------------------------------------------------------------------------

Progress::Progress(std::string label, std::int64_t total_batches, bool show_metrics)
    : label_(std::move(label)),
      total_(total_batches),
      terminal_(::isatty(STDERR_FILENO) != 0),
      show_metrics_(show_metrics),
      start_(std::chrono::steady_clock::now()) {}

std::string format_duration(double seconds) {
  const auto s = static_cast<std::int64_t>(std::max(0.0, std::round(seconds)));
  char buffer[32];
  if (s >= 3600) {
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  }
  return buffer;
}

void Progress::update(std::int64_t done, double loss, double accuracy, std::int64_t images) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  // Off a terminal, one line per tenth of the phase keeps logs readable.
  const std::int64_t tenth = total_ > 0 ? done * 10 / total_ : 10;
  if (!terminal_ && tenth == last_printed_) return;
  last_printed_ = tenth;
  const double rate = elapsed > 0 ? static_cast<double>(images) / elapsed : 0.0;
  const double eta =
      done > 0 ? elapsed * static_cast<double>(total_ - done) / static_cast<double>(done) : 0.0;
  char metrics[64] = "";
  if (show_metrics_) std::snprintf(metrics, sizeof metrics, "  loss %.4f  acc %5.1f%%", loss, 100 * accuracy);
  std::fprintf(stderr, "%s%s %4lld/%-4lld%s  %6.1f img/s  elapsed %s  eta %s%s", terminal_ ? "\r" : "",
               label_.c_str(), static_cast<long long>(done), static_cast<long long>(total_), metrics, rate,
               format_duration(elapsed).c_str(), format_duration(eta).c_str(), terminal_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

void Progress::finish(const std::string& summary) {
  std::fprintf(stderr, "%s%s%s\n", terminal_ ? "\r" : "", summary.c_str(), terminal_ ? "\033[K" : "");
  std::fflush(stderr);
}

// ---- files
// ----------------------------------------------------------------------------------------------------

void write_text_file(const std::string& path, const std::string& text) {
  AtomicFile file(path);
  {
    std::ofstream out(file.temp_path(), std::ios::binary);
    out << text;
    out.flush();
    TL_CHECK(out.good(), Error, "cannot write ", path, " (disk full?)");
  }
  file.commit();
}

void write_metrics(const std::string& out_dir, const std::vector<EpochRecord>& history) {
  std::ostringstream csv, jsonl;
  csv << "epoch,train_loss,train_accuracy,val_loss,val_accuracy,val_top5";
  if (!history.empty())
    for (const auto& [group, _] : history.back().learning_rates) csv << ",lr_" << group;
  csv << ",images_per_second,seconds\n";
  for (const EpochRecord& r : history) {
    csv << r.epoch << "," << r.train_loss << "," << r.train_accuracy << "," << r.val_loss << ","
        << r.val_accuracy << ",";
    if (r.val_top5 >= 0) csv << r.val_top5;
    // Gradual unfreezing adds groups: every row has the columns of the last one.
    for (const auto& [group, _] : history.back().learning_rates) {
      csv << ",";
      for (const auto& [g, lr] : r.learning_rates)
        if (g == group) csv << lr;
    }
    csv << "," << r.images_per_second << "," << r.seconds << "\n";
    jsonl << to_json(r) << "\n";
  }
  write_text_file(out_dir + "/metrics.csv", csv.str());
  write_text_file(out_dir + "/metrics.jsonl", jsonl.str());
}

namespace {

// One chart: a frame, axes labels and a polyline per series over epochs 1..n.
void chart(std::ostringstream& svg, double x0, const std::string& title, const std::vector<EpochRecord>& h,
           const std::vector<std::pair<std::string, std::vector<double>>>& series, double y_min,
           double y_max) {
  constexpr double kWidth = 380, kHeight = 240, kLeft = 50, kTop = 30;
  const auto px = [&](std::size_t i) {
    return x0 + kLeft +
           (h.size() > 1 ? kWidth * static_cast<double>(i) / static_cast<double>(h.size() - 1) : 0);
  };
  const auto py = [&](double v) {
    return kTop + kHeight * (1 - (v - y_min) / std::max(y_max - y_min, 1e-12));
  };
  svg << "<text x='" << x0 + kLeft << "' y='20' font-size='14'>" << title << "</text>\n";
  svg << "<rect x='" << x0 + kLeft << "' y='" << kTop << "' width='" << kWidth << "' height='" << kHeight
      << "' fill='none' stroke='#888'/>\n";
  for (int t = 0; t <= 4; ++t) {
    const double v = y_min + (y_max - y_min) * t / 4.0;
    svg << "<text x='" << x0 + 5 << "' y='" << py(v) + 4 << "' font-size='10'>" << std::setprecision(3) << v
        << "</text>\n";
  }
  svg << "<text x='" << x0 + kLeft + kWidth / 2 - 15 << "' y='" << kTop + kHeight + 20
      << "' font-size='11'>epoch 1-" << h.size() << "</text>\n";
  const char* colors[] = {"#1f77b4", "#d62728"};
  for (std::size_t s = 0; s < series.size(); ++s) {
    svg << "<polyline fill='none' stroke='" << colors[s % 2] << "' stroke-width='2' points='";
    for (std::size_t i = 0; i < series[s].second.size(); ++i)
      svg << px(i) << "," << py(series[s].second[i]) << " ";
    svg << "'/>\n<text x='" << x0 + kLeft + 10 + 110 * static_cast<double>(s) << "' y='" << kTop + 15
        << "' font-size='11' fill='" << colors[s % 2] << "'>" << series[s].first << "</text>\n";
  }
}

}  // namespace

void write_curves(const std::string& path, const std::vector<EpochRecord>& history) {
  std::vector<double> train_loss, val_loss, train_acc, val_acc;
  for (const EpochRecord& r : history) {
    train_loss.push_back(r.train_loss);
    val_loss.push_back(r.val_loss);
    train_acc.push_back(r.train_accuracy);
    val_acc.push_back(r.val_accuracy);
  }
  double max_loss = 0;
  for (double v : train_loss) max_loss = std::max(max_loss, v);
  for (double v : val_loss) max_loss = std::max(max_loss, v);
  std::ostringstream svg;
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='900' height='300' font-family='sans-serif'>\n"
      << "<rect width='900' height='300' fill='white'/>\n";
  chart(svg, 0, "loss", history, {{"train", train_loss}, {"validation", val_loss}}, 0,
        max_loss > 0 ? max_loss : 1);
  chart(svg, 450, "accuracy", history, {{"train", train_acc}, {"validation", val_acc}}, 0, 1);
  svg << "</svg>\n";
  write_text_file(path, svg.str());
}

std::string confusion_table(const std::vector<std::string>& classes,
                            const std::vector<std::vector<std::int64_t>>& confusion) {
  // Row labels up to 20 characters, columns as wide as the longest name up to 12 (cut beyond).
  std::size_t width = 8, column = 7;
  for (const auto& c : classes) {
    width = std::max(width, std::min<std::size_t>(c.size(), 20) + 1);
    column = std::max(column, std::min<std::size_t>(c.size(), 12));
  }
  const int cell = static_cast<int>(column) + 1;
  std::ostringstream out;
  out << "confusion matrix (rows: true class, columns: predicted)\n" << std::string(width, ' ');
  for (std::size_t c = 0; c < classes.size(); ++c) out << std::setw(cell) << classes[c].substr(0, column);
  out << "\n";
  for (std::size_t r = 0; r < classes.size(); ++r) {
    out << std::left << std::setw(static_cast<int>(width)) << classes[r].substr(0, 20) << std::right;
    for (std::size_t c = 0; c < classes.size(); ++c) out << std::setw(cell) << confusion[r][c];
    out << "\n";
  }
  return out.str();
}

namespace {
// A CSV field, quoted when it holds a comma, quote or newline (class names may).
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}
}  // namespace

void write_confusion_csv(const std::string& path, const std::vector<std::string>& classes,
                         const std::vector<std::vector<std::int64_t>>& confusion) {
  std::ostringstream csv;
  csv << "true\\predicted";
  for (const auto& c : classes) csv << "," << csv_field(c);
  csv << "\n";
  for (std::size_t r = 0; r < classes.size(); ++r) {
    csv << csv_field(classes[r]);
    for (std::size_t c = 0; c < classes.size(); ++c) csv << "," << confusion[r][c];
    csv << "\n";
  }
  write_text_file(path, csv.str());
}

}  // namespace tl::train
