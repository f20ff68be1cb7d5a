// Bad input to every tool, one table row per case: the command, the exit status it must give and a fragment
// of the message, which must name the file, flag or tensor at fault. Each row also checks that the tool was
// not killed by a signal, did not hang (`timeout 60`; 124 fails the row), and, where the row names one, that
// an existing output file is untouched. docs/BAD_INPUT.md is this table with the messages of a real run:
// TL_BAD_INPUT_DOC=FILE writes its rows to FILE.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "engine/npy.h"
#include "engine/tensor.h"
#include "models/registry.h"
#include "tests/support/fixtures.h"
#include "tests/support/run_command.h"
#include "weights/weights_file.h"

namespace tl {
namespace {

namespace fs = std::filesystem;

struct Case {
  Case(std::string name_, std::string tool_, std::string args_, int exit_code_, std::string fragment_,
       std::string keep_ = "", bool needs_denial_ = false)
      : name(std::move(name_)),
        tool(std::move(tool_)),
        args(std::move(args_)),
        exit_code(exit_code_),
        fragment(std::move(fragment_)),
        keep(std::move(keep_)),
        needs_denial(needs_denial_) {}

  std::string name;           // the test's name
  std::string tool;           // tl_convert, tl_predict, tl_train, tl_models
  std::string args;           // {T}: the scratch folder, {F}: the fixture folder, {OUT}: a fresh run folder
  int exit_code;              // the status it must exit with
  std::string fragment;       // the message (stderr) must contain this
  std::string keep;           // a file under {T} that must be byte for byte the same afterwards ("": none)
  bool needs_denial = false;  // relies on chmod denying access, which root ignores
};

// What gtest prints for a failing row: its name, not its bytes.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

// Base of the tl_train rows: a tiny run that fails fast.
const std::string kTrain =
    "--data {F}/train/shapes --model mobilenet_v3_small --image-size 32 --epochs 1 --out {OUT}";
const std::string kPretrained =
    "--data {F}/train/shapes --weights {T}/r18.h5 --reset-head --image-size 32 --epochs 1 --out {OUT}";
const std::string kPredict = "--weights {T}/small.h5";  // mobilenet_v3_small, 10 classes

std::vector<Case> cases() {
  return {
      // ---- tl_convert ------------------------------------------------------------------------------------
      {"ConvertMissingInput", "tl_convert", "{T}/absent.pth -o {T}/keep.h5", 1, "absent.pth: no such file",
       "keep.h5"},
      {"ConvertFolderAsInput", "tl_convert", "{T}/folder -o {T}/keep.h5", 1,
       "folder: is a folder, not a file", "keep.h5"},
      {"ConvertUnreadableInput", "tl_convert", "{T}/unreadable.pth -o {T}/open/keep.h5", 1,
       "unreadable.pth: cannot be read (Permission denied)", "open/keep.h5", true},
      {"ConvertEmptyFile", "tl_convert", "{T}/empty.pth -o {T}/keep.h5", 1, "empty.pth: the file is empty",
       "keep.h5"},
      {"ConvertJpeg", "tl_convert", "{T}/photo.jpg -o {T}/keep.h5", 1,
       "photo.jpg: not a format tl_convert reads", "keep.h5"},
      {"ConvertTextAsPth", "tl_convert", "{T}/text.pth -o {T}/keep.h5", 1,
       "text.pth: not a format tl_convert reads", "keep.h5"},
      {"ConvertTextAsH5", "tl_convert", "{T}/text.h5 -o {T}/keep.h5", 1,
       "text.h5: not a format tl_convert reads", "keep.h5"},
      {"ConvertTextAsSafetensors", "tl_convert", "{T}/text.safetensors -o {T}/keep.h5", 1,
       "text.safetensors: not a format tl_convert reads", "keep.h5"},
      {"ConvertTextAsOnnx", "tl_convert", "{T}/text.onnx -o {T}/keep.h5", 1, "text.onnx: not an ONNX model",
       "keep.h5"},
      {"ConvertTruncatedH5", "tl_convert", "{T}/truncated.h5 -o {T}/keep.h5", 1,
       "truncated.h5: cannot open the HDF5 file (damaged or truncated?)", "keep.h5"},
      {"ConvertTruncatedSafetensors", "tl_convert", "{T}/truncated.safetensors -o {T}/keep.h5", 1,
       "truncated.safetensors", "keep.h5"},
      {"ConvertShapeMismatch", "tl_convert", "{T}/shape.h5 -o {T}/keep.h5", 1,
       "shape mismatch: layer2.0.conv1.weight is [128, 64, 3, 3] in the model, [128, 64, 1, 1]", "keep.h5"},
      {"ConvertWrongArch", "tl_convert", "{T}/r18.h5 --arch mobilenet_v2 -o {T}/keep.h5", 1,
       "r18.h5 does not fit mobilenet_v2", "keep.h5"},
      {"ConvertUndetectableArch", "tl_convert", "{T}/unknown.safetensors -o {T}/keep.h5", 1,
       "unknown.safetensors: cannot tell the architecture", "keep.h5"},
      {"ConvertNanWeights", "tl_convert", "{T}/nan.safetensors -o {T}/keep.h5", 1,
       "nan.safetensors: tensor 'fc.weight' [2, 2] holds 1 NaN or infinite value(s)", "keep.h5"},
      {"ConvertNanWeightsH5", "tl_convert", "{T}/nan.h5 -o {T}/keep.h5", 1,
       "nan.h5: tensor 'layer1.0.conv1.weight' holds NaN or infinite values", "keep.h5"},
      // Files that crash libhdf5 1.10.8 itself (tests/fuzz/known/, copied at test time): libhdf5 runs in a
      // sandboxed child (weights/sandbox.h), so the crash is the child's and the tool reports it. The signal
      // is left out of the fragments: under the sanitizers a crash can end as a report and an exit status.
      {"ConvertKerasCrashingLibhdf5", "tl_convert", "{T}/libhdf5_segv_keras.h5 -o {T}/keep.h5", 1,
       "libhdf5_segv_keras.h5: the HDF5 library crashed reading this file", "keep.h5"},
      {"ConvertWeightsCrashingLibhdf5", "tl_convert", "{T}/libhdf5_segv.h5 -o {T}/keep.h5", 1,
       "libhdf5_segv.h5: the HDF5 library crashed reading this file", "keep.h5"},
      {"ConvertOutputIsAFolder", "tl_convert", "{T}/r18.h5 -o {T}/folder", 1,
       "-o: cannot write {T}/folder: it is a folder"},
      {"ConvertOutputFolderUnwritable", "tl_convert", "{T}/r18.h5 -o {T}/readonly/w.h5", 1,
       "-o: cannot write {T}/readonly/w.h5: folder {T}/readonly is not writable", "", true},
      {"ConvertClassesMissing", "tl_convert", "{T}/r18.h5 --classes {T}/absent.txt -o {T}/keep.h5", 1,
       "absent.txt: no such file", "keep.h5"},
      {"ConvertClassesFolder", "tl_convert", "{T}/r18.h5 --classes {T}/folder -o {T}/keep.h5", 1,
       "folder: is a folder, not a file", "keep.h5"},
      {"ConvertClassesEmpty", "tl_convert", "{T}/r18.h5 --classes {T}/empty.pth -o {T}/keep.h5", 1,
       "empty.pth: 0 class names for a head with 10 outputs", "keep.h5"},
      {"ConvertUnknownFlag", "tl_convert", "{T}/r18.h5 -o {T}/keep.h5 --bogus", 109,
       "The following argument was not expected: --bogus", "keep.h5"},

      // ---- tl_predict ------------------------------------------------------------------------------------
      {"PredictWeightsFolder", "tl_predict", "--weights {T}/folder {T}/photo.jpg", 1,
       "folder: is a folder, not a file"},
      {"PredictWeightsUnreadable", "tl_predict", "--weights {T}/unreadable.h5 {T}/photo.jpg", 1,
       "unreadable.h5: cannot be read (Permission denied)", "", true},
      {"PredictWeightsJpeg", "tl_predict", "--weights {T}/photo.jpg {T}/photo.jpg", 1,
       "photo.jpg: not an HDF5 file"},
      {"PredictWeightsText", "tl_predict", "--weights {T}/text.h5 {T}/photo.jpg", 1,
       "text.h5: not an HDF5 file"},
      {"PredictWeightsOtherFramework", "tl_predict", "--weights {T}/unknown.safetensors {T}/photo.jpg", 1,
       "unknown.safetensors is a safetensors checkpoint, not a tl weight file: convert it first"},
      {"PredictWeightsTruncated", "tl_predict", "--weights {T}/truncated.h5 {T}/photo.jpg", 1,
       "truncated.h5: cannot open the HDF5 file (damaged or truncated?)"},
      {"PredictWeightsShapeMismatch", "tl_predict", "--weights {T}/shape.h5 {T}/photo.jpg", 1,
       "shape mismatch: layer2.0.conv1.weight"},
      {"PredictWeightsNan", "tl_predict", "--weights {T}/nan.h5 {T}/photo.jpg", 1,
       "nan.h5: tensor 'layer1.0.conv1.weight' holds NaN or infinite values"},
      {"PredictWeightsCrashingLibhdf5", "tl_predict", "--weights {T}/libhdf5_segv.h5 {T}/photo.jpg", 1,
       "libhdf5_segv.h5: the HDF5 library crashed reading this file"},
      {"PredictTopkNegative", "tl_predict", kPredict + " --topk -3 {T}/photo.jpg", 1,
       "--topk must be at least 1, got -3"},
      {"PredictTopkNotANumber", "tl_predict", kPredict + " --topk abc {T}/photo.jpg", 104,
       "Could not convert: --topk = abc"},
      {"PredictTopkAboveClasses", "tl_predict", kPredict + " --topk 50 {T}/photo.jpg", 0,
       "--topk 50 is more than the model's 10 classes; printing all 10"},
      {"PredictBatchSizeZero", "tl_predict", kPredict + " --batch-size 0 {T}/photo.jpg", 1,
       "--batch-size must be at least 1, got 0"},
      {"PredictUnknownDevice", "tl_predict", kPredict + " --device gpu {T}/photo.jpg", 1,
       "--device: unknown device 'gpu': expected cpu, cuda or cuda:N"},
      // This machine has no GPU (with or without the CUDA backend built): the message says so and names the flag.
      {"PredictNoCudaDevice", "tl_predict", kPredict + " --device cuda {T}/photo.jpg", 1, "--device cuda: "},
      {"PredictMissingImage", "tl_predict", kPredict + " {T}/absent.jpg", 1,
       "absent.jpg: no such file or folder"},
      {"PredictNoImageReadable", "tl_predict", kPredict + " {T}/text.pth", 1,
       "no image could be read (1 skipped)"},
      {"PredictEmptyFolder", "tl_predict", kPredict + " {T}/emptyroot", 1,
       "emptyroot: the folder holds no files"},
      {"PredictTensorFourChannels", "tl_predict", kPredict + " --tensor {T}/four_channels.npy", 1,
       "four_channels.npy: expected an NCHW float32 array with 3 channels, got [1, 4, 32, 32]"},
      {"PredictTensorNoImages", "tl_predict", kPredict + " --tensor {T}/no_images.npy", 1,
       "no_images.npy: holds no image (shape [0, 3, 32, 32])"},
      {"PredictTensorNan", "tl_predict", kPredict + " --tensor {T}/nan.npy", 1,
       "nan.npy: element 5 is nan; the input must be finite"},
      {"PredictTensorNotNpy", "tl_predict", kPredict + " --tensor {T}/text.pth", 1,
       "text.pth: not a .npy file"},
      {"PredictLogitsIntoAFolder", "tl_predict", kPredict + " --tensor {T}/image.npy --logits {T}/folder", 1,
       "--logits: cannot write {T}/folder: it is a folder"},
      {"PredictLogitsMissingFolder", "tl_predict",
       kPredict + " --tensor {T}/image.npy --logits {T}/absent/l.npy", 1,
       "--logits: cannot write {T}/absent/l.npy: folder {T}/absent does not exist"},

      // ---- tl_train: flags -------------------------------------------------------------------------------
      {"TrainFlagGivenTwice", "tl_train", kTrain + " --epochs 2", 114, "--epochs: At Most 1 required"},
      {"TrainEpochsNotANumber", "tl_train", "--data {F}/train/shapes --model mobilenet_v3_small --epochs abc",
       104, "Could not convert: --epochs = abc"},
      {"TrainEpochsNegativeAlone", "tl_train",
       "--data {F}/train/shapes --model mobilenet_v3_small --epochs -1", 1,
       "--epochs must be at least 1, got -1"},
      {"TrainBatchSizeNegative", "tl_train", kTrain + " --batch-size -4", 1,
       "--batch-size must be at least 1, got -4"},
      {"TrainLrZero", "tl_train", kTrain + " --lr 0", 1, "--lr must be positive and finite, got 0"},
      {"TrainLrNan", "tl_train", kTrain + " --lr nan", 1, "--lr must be positive and finite, got nan"},
      {"TrainLrInf", "tl_train", kTrain + " --lr inf", 1, "--lr must be positive and finite, got inf"},
      {"TrainBaseLrNegative", "tl_train", kTrain + " --base-lr -1", 1,
       "--base-lr must be positive and finite"},
      {"TrainBaseLrNan", "tl_train", kTrain + " --base-lr nan", 1, "--base-lr must be positive and finite"},
      {"TrainImageSizeNegative", "tl_train", "--data {F}/train/shapes --model resnet18 --image-size -5", 1,
       "--image-size must be between 16 and 4096 pixels, got -5"},
      {"TrainImageSizeOne", "tl_train", "--data {F}/train/shapes --model mobilenet_v3_small --image-size 1",
       1, "--image-size must be between 16 and 4096 pixels, got 1"},
      {"TrainImageSizeTooSmall", "tl_train", "--data {F}/train/shapes --model resnet18 --image-size 15", 1,
       "--image-size must be between 16 and 4096 pixels, got 15"},
      {"TrainImageSizeHuge", "tl_train", "--data {F}/train/shapes --model resnet18 --image-size 100000", 1,
       "--image-size must be between 16 and 4096 pixels, got 100000"},
      {"TrainValFractionZero", "tl_train", kTrain + " --val-fraction 0", 1,
       "--val-fraction must be in (0, 1), got 0"},
      {"TrainValFractionOne", "tl_train", kTrain + " --val-fraction 1", 1,
       "--val-fraction must be in (0, 1), got 1"},
      {"TrainValFractionNan", "tl_train", kTrain + " --val-fraction nan", 1,
       "--val-fraction must be in (0, 1), got nan"},
      {"TrainWorkersNegative", "tl_train", kTrain + " --workers -1", 1,
       "--workers must be between 0 and 64, got -1"},
      {"TrainWorkersHuge", "tl_train", kTrain + " --workers 1000", 1,
       "--workers must be between 0 and 64, got 1000"},
      {"TrainUnknownOptimizer", "tl_train", kTrain + " --optimizer rmsprop", 1,
       "--optimizer: unknown value 'rmsprop' (expected sgd, adam, adamw)"},
      {"TrainUnknownScheduler", "tl_train", kTrain + " --scheduler bogus", 1,
       "--scheduler 'bogus': unknown schedule 'bogus'"},
      {"TrainSchedulerGammaZero", "tl_train", kTrain + " --scheduler step:1:0", 1,
       "--scheduler 'step:1:0': gamma must be positive"},
      {"TrainWarmupLongerThanRun", "tl_train", kTrain + " --scheduler warmup:5+cosine", 1,
       "--scheduler 'warmup:5+cosine': the warm-up (5 epochs) leaves no epochs"},
      {"TrainUnknownCacheFeatures", "tl_train", kTrain + " --cache-features maybe", 1,
       "--cache-features: unknown value 'maybe'"},
      {"TrainUnknownKernels", "tl_train", kTrain + " --kernels fast", 1,
       "--kernels: unknown kernel policy 'fast'"},
      {"TrainUnknownDevice", "tl_train", kTrain + " --device cuda:x", 1,
       "--device: unknown device 'cuda:x': expected cpu, cuda or cuda:N"},
      {"TrainNoCudaDevice", "tl_train", kTrain + " --device cuda:0", 1, "--device cuda:0: "},
      {"TrainTf32OnCpu", "tl_train", kTrain + " --allow-tf32", 1, "--allow-tf32 applies to --device cuda only"},
      {"TrainGroupLrNoPattern", "tl_train", kTrain + " --group-lr =1e-3", 1,
       "--group-lr '=1e-3': expected PATTERN=LR"},
      {"TrainGroupLrNotANumber", "tl_train", kTrain + " --group-lr layer4=abc", 1,
       "--group-lr 'layer4=abc': 'abc' is not a learning rate"},
      {"TrainGroupLrNegative", "tl_train", kTrain + " --group-lr layer4=-1", 1,
       "--group-lr layer4=-1: the learning rate must be positive and finite"},
      {"TrainGroupLrInf", "tl_train", kTrain + " --group-lr layer4=inf", 1,
       "--group-lr layer4=inf: the learning rate must be positive and finite"},
      {"TrainGroupLrNoSuchBlock", "tl_train", kTrain + " --group-lr layer9=1e-3", 1,
       "pattern 'layer9' matches no parameter"},
      {"TrainUnfreezeNoSuchBlock", "tl_train", kPretrained + " --strategy finetune --unfreeze layer9", 1,
       "--unfreeze: 'layer9' matches no parameter of resnet18"},
      {"TrainUnfreezeWithoutFinetune", "tl_train", kPretrained + " --strategy full --unfreeze layer3", 1,
       "--unfreeze names the blocks that train with --strategy finetune, but this run's strategy is full"},
      {"TrainUnfreezeScheduleNoSuchBlock", "tl_train",
       kPretrained + " --strategy finetune --unfreeze-schedule 0:layer4,2:layer9", 1,
       "--unfreeze-schedule '0:layer4,2:layer9': 'layer9' matches no parameter of resnet18"},
      {"TrainUnfreezeScheduleMalformed", "tl_train", kTrain + " --unfreeze-schedule garbage", 1,
       "--unfreeze-schedule 'garbage': 'garbage' is not EPOCH:BLOCK"},
      {"TrainHeadMalformed", "tl_train", kTrain + " --head mlp:x:y", 1,
       "--head 'mlp:x:y': expected linear or mlp:HIDDEN:DROPOUT"},
      {"TrainHeadHiddenZero", "tl_train", kTrain + " --head mlp:0:0.5", 1,
       "--head 'mlp:0:0.5': the hidden width must be at least 1"},
      {"TrainHeadDropoutAboveOne", "tl_train", kTrain + " --head mlp:10:1.5", 1,
       "head: dropout must be in [0, 1), got 1.5"},
      {"TrainMomentumOne", "tl_train", kTrain + " --momentum 1", 1, "--momentum must be in [0, 1), got 1"},
      {"TrainWeightDecayNegative", "tl_train", kTrain + " --weight-decay -1", 1,
       "--weight-decay must be finite and not negative, got -1"},
      {"TrainWeightDecayInf", "tl_train", kTrain + " --weight-decay inf", 1,
       "--weight-decay must be finite and not negative, got inf"},
      {"TrainLabelSmoothingOne", "tl_train", kTrain + " --label-smoothing 1", 1,
       "--label-smoothing must be in [0, 1), got 1"},
      {"TrainUnknownFlag", "tl_train", kTrain + " --bogus", 109,
       "The following argument was not expected: --bogus"},
      {"TrainConfigMissing", "tl_train", "--config {T}/absent.toml", 103, "absent.toml"},
      {"TrainResumeWithoutLastH5", "tl_train", "--resume {T}/folder", 1,
       "--resume {T}/folder: no last.h5 in that folder (nothing to resume)"},
      {"TrainResumeNotACheckpoint", "tl_train", "--resume {T}/fake_run", 1,
       "fake_run/last.h5 holds no training state (not a tl_train checkpoint)"},
      {"TrainResumeCrashingLibhdf5", "tl_train", "--resume {T}/crash_run", 1,
       "crash_run/last.h5: the HDF5 library crashed reading this file"},
      {"TrainOutIsAFile", "tl_train",
       "--data {F}/train/shapes --model mobilenet_v3_small --image-size 32 --out {T}/keep.h5", 1,
       "--out {T}/keep.h5: cannot create the run folder", "keep.h5"},
      {"TrainOutUnwritable", "tl_train",
       "--data {F}/train/shapes --model mobilenet_v3_small --image-size 32 --out {T}/readonly/run", 1,
       "--out {T}/readonly/run: cannot create the run folder", "", true},

      // ---- tl_train: data --------------------------------------------------------------------------------
      {"TrainDataIsAFile", "tl_train", "--data {T}/photo.jpg --model mobilenet_v3_small --out {OUT}", 1,
       "photo.jpg: not a folder"},
      {"TrainDataNoClassFolders", "tl_train", "--data {T}/emptyroot --model mobilenet_v3_small --out {OUT}",
       1, "emptyroot: no class folders"},
      {"TrainDataOneFilePerClass", "tl_train", "--data {T}/text_only --model mobilenet_v3_small --out {OUT}",
       1, "text_only: class 'a' has 1 file, too few to split into training and validation"},
      {"TrainDataNoImageReadable", "tl_train",
       "--data {T}/unreadable_images --model mobilenet_v3_small --image-size 32 --epochs 1 --out {OUT}", 1,
       "no training image could be read: all 2 files failed to load"},
      {"TrainDataNoImageReadableCached", "tl_train",
       "--data {T}/unreadable_images --weights {T}/r18.h5 --reset-head --strategy feature-extract "
       "--no-augment "
       "--image-size 32 --epochs 1 --out {OUT}",
       1, "no training image could be read: all 2 files failed to load"},
      {"TrainValDataMissing", "tl_train", kTrain + " --val-data {T}/absent", 1, "absent: no such folder"},
      {"TrainValDataOneClass", "tl_train",
       "--data {F}/train/shapes/train --val-data {F}/train/one_class --model mobilenet_v3_small --out {OUT}",
       1, "one_class: only one class folder ('only')"},
      {"TrainValDataEmptyClass", "tl_train",
       "--data {F}/train/shapes/train --val-data {F}/train/empty_class --model mobilenet_v3_small --out "
       "{OUT}",
       1, "empty_class: class folder 'b' is empty"},
      {"TrainValDataOtherClasses", "tl_train",
       "--data {F}/train/shapes/train --val-data {T}/unreadable_images/val --model mobilenet_v3_small --out "
       "{OUT}",
       1, "differ; both need the same class folders"},
      {"TrainFashionMnistBadClass", "tl_train",
       "--data fashion-mnist:11 --model mobilenet_v3_small --out {OUT}", 1,
       "--data 'fashion-mnist:11': classes are 0-9"},

      // ---- tl_train: weights -----------------------------------------------------------------------------
      {"TrainWeightsFolder", "tl_train", "--data {F}/train/shapes --weights {T}/folder --out {OUT}", 1,
       "folder: is a folder, not a file"},
      {"TrainWeightsJpeg", "tl_train", "--data {F}/train/shapes --weights {T}/photo.jpg --out {OUT}", 1,
       "photo.jpg: not an HDF5 file"},
      {"TrainWeightsOtherFramework", "tl_train",
       "--data {F}/train/shapes --weights {T}/unknown.safetensors --out {OUT}", 1,
       "unknown.safetensors is a safetensors checkpoint, not a tl weight file: convert it first"},
      {"TrainWeightsTruncated", "tl_train", "--data {F}/train/shapes --weights {T}/truncated.h5 --out {OUT}",
       1, "truncated.h5: cannot open the HDF5 file"},
      {"TrainWeightsWrongModel", "tl_train",
       "--data {F}/train/shapes --weights {T}/r18.h5 --model resnet50 --reset-head --out {OUT}", 1,
       "r18.h5 holds resnet18 weights, but --model is resnet50"},
      {"TrainWeightsHeadWithoutReset", "tl_train",
       "--data {F}/train/shapes --weights {T}/r18.h5 --image-size 32 --out {OUT}", 1,
       "r18.h5 has a 10-class head and the data has 3 classes: pass --reset-head"},
      {"TrainWeightsShapeMismatch", "tl_train",
       "--data {F}/train/shapes --weights {T}/shape.h5 --reset-head --image-size 32 --out {OUT}", 1,
       "shape mismatch: layer2.0.conv1.weight"},
      {"TrainWeightsNan", "tl_train",
       "--data {F}/train/shapes --weights {T}/nan.h5 --reset-head --image-size 32 --out {OUT}", 1,
       "nan.h5: tensor 'layer1.0.conv1.weight' holds NaN or infinite values"},
      {"TrainWeightsCrashingLibhdf5", "tl_train",
       "--data {F}/train/shapes --weights {T}/libhdf5_sigbus.h5 --reset-head --image-size 32 --out {OUT}", 1,
       "libhdf5_sigbus.h5: the HDF5 library crashed reading this file"},

      // ---- tl_models -------------------------------------------------------------------------------------
      {"ModelsNoMatch", "tl_models", "resnet5", 1, "no architecture matches 'resnet5'"},
      {"ModelsUnknownFlag", "tl_models", "--bogus", 109, "The following argument was not expected: --bogus"},
  };
}

// ---- the scratch folder every row runs against --------------------------------------------------------

fs::path scratch() {
  static const fs::path folder = fs::temp_directory_path() / ("tl_bad_input_" + std::to_string(::getpid()));
  return folder;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A safetensors file of float32 tensors (8-byte header length, JSON header, data).
void write_safetensors(const fs::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::string header = "{", data;
  for (const auto& [name, t] : tensors) {
    const Tensor dense = t.contiguous();
    std::string shape;
    for (const std::int64_t s : dense.shape()) {
      if (!shape.empty()) shape += ',';
      shape += std::to_string(s);
    }
    const std::size_t begin = data.size();
    data.append(static_cast<const char*>(dense.raw_data()), static_cast<std::size_t>(dense.numel()) * 4);
    if (header.size() > 1) header += ',';
    header += str("\"", name, "\":{\"dtype\":\"F32\",\"shape\":[", shape, "],\"data_offsets\":[", begin, ",",
                  data.size(), "]}");
  }
  header += "}";
  std::string length(8, '\0');
  for (int i = 0; i < 8; ++i)
    length[static_cast<std::size_t>(i)] = static_cast<char>(header.size() >> (8 * i));
  write_text(path, length + header + data);
}

void save_model(const fs::path& path, const StateDict& sd, const std::string& architecture = "resnet18") {
  weights::Metadata m;
  m.architecture = architecture;
  m.num_classes = 10;
  weights::save_weights(path.string(), sd, m);
}

class BadInputEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const fs::path t = scratch();
    fs::create_directories(t / "folder");
    fs::create_directories(t / "emptyroot");
    fs::create_directories(t / "readonly");
    for (const char* c : {"a", "b"}) {
      fs::create_directories(t / "text_only" / c);
      write_text(t / "text_only" / c / "notes.jpg", "not an image");
      for (const char* split : {"train", "val"}) {
        fs::create_directories(t / "unreadable_images" / split / c);
        write_text(t / "unreadable_images" / split / c / "x.jpg", "not an image");
      }
    }
    write_text(t / "keep.h5", "an earlier output that must survive");
    fs::create_directories(t / "open");  // writable by the user nobody that the permission rows run as
    write_text(t / "open" / "keep.h5", "an earlier output that must survive");
    write_text(t / "empty.pth", "");
    for (const char* ext : {"pth", "h5", "safetensors", "onnx"})
      write_text(t / str("text.", ext), "hello world\n");
    if (fs::exists(fixture("train/shapes/val/red/red00.jpg")))
      fs::copy_file(fixture("train/shapes/val/red/red00.jpg"), t / "photo.jpg");

    const auto model = models::create_model("resnet18", 10, 5);
    const StateDict sd = model->state_dict();
    save_model(t / "r18.h5", sd);
    save_model(t / "small.h5", models::create_model("mobilenet_v3_small", 10, 5)->state_dict(),
               "mobilenet_v3_small");
    const std::string full = read_bytes(t / "r18.h5");
    write_text(t / "truncated.h5", full.substr(0, 100000));
    write_text(t / "unreadable.h5", full.substr(0, 1000));
    write_text(t / "unreadable.pth", "x");

    StateDict nan_sd, shape_sd;
    for (const auto& [name, tensor] : sd) {
      Tensor copy = tensor.detach().clone();
      if (name == "layer1.0.conv1.weight") copy.data<float>()[7] = std::numeric_limits<float>::quiet_NaN();
      nan_sd.insert(name, copy);
      shape_sd.insert(name,
                      name == "layer2.0.conv1.weight" ? zeros({128, 64, 1, 1}) : tensor.detach().clone());
    }
    save_model(t / "nan.h5", nan_sd);
    save_model(t / "shape.h5", shape_sd);

    Tensor nan_fc = zeros({2, 2});
    nan_fc.data<float>()[3] = std::numeric_limits<float>::infinity();
    write_safetensors(t / "nan.safetensors", {{"fc.weight", nan_fc}});
    write_safetensors(t / "unknown.safetensors", {{"foo.weight", zeros({4, 4})}});
    const std::string st = read_bytes(t / "unknown.safetensors");
    write_text(t / "truncated.safetensors", st.substr(0, st.size() - 20));

    save_npy((t / "four_channels.npy").string(), zeros({1, 4, 32, 32}));
    save_npy((t / "no_images.npy").string(), zeros({0, 3, 32, 32}));
    save_npy((t / "image.npy").string(), zeros({1, 3, 32, 32}));
    Tensor nan_image = zeros({1, 3, 32, 32});
    nan_image.data<float>()[5] = std::numeric_limits<float>::quiet_NaN();
    save_npy((t / "nan.npy").string(), nan_image);

    fs::create_directories(t / "fake_run");
    save_model(t / "fake_run" / "last.h5", sd);

    // Inputs that crash libhdf5 itself (tests/fuzz/README.md, "Known findings in libraries"), by kind.
    const fs::path known = TL_FUZZ_KNOWN_DIR;
    fs::copy_file(known / "weights_file" / "crash-ab07c9cf0fd02e3c740d136c4ff4e4c49a5e5586",
                  t / "libhdf5_segv.h5");
    fs::copy_file(known / "weights_file" / "crash-ed3c161dbe8270bbcdb79dced949398d751b3256",
                  t / "libhdf5_sigbus.h5");
    fs::copy_file(known / "keras" / "crash-942949c0db18439ea15d730647bb45acc8d66901",
                  t / "libhdf5_segv_keras.h5");
    fs::create_directories(t / "crash_run");
    fs::copy_file(t / "libhdf5_segv.h5", t / "crash_run" / "last.h5");

    fs::permissions(t / "unreadable.pth", fs::perms::none);
    fs::permissions(t / "unreadable.h5", fs::perms::none);
    fs::permissions(t / "readonly", fs::perms::owner_read | fs::perms::owner_exec);
    fs::permissions(t / "open", fs::perms::all);
    // The permission rows may run as user nobody, who must be able to reach these (whatever the umask).
    fs::permissions(t, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                           fs::perms::others_read | fs::perms::others_exec);
  }

  void TearDown() override {
    fs::permissions(scratch() / "readonly", fs::perms::owner_all);
    fs::remove_all(scratch());
  }

  static fs::path fixture(const std::string& relative) { return testing::fixture_path(relative); }
};

const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new BadInputEnvironment);

// Root reads and writes whatever the permission bits say: a chmod 000 file is not unreadable to it. Then a
// row that needs permissions to deny access runs as user nobody (setpriv, util-linux) where that user can run
// the tool; the prefix for the command, or nullopt where neither works.
std::optional<std::string> denial_prefix(const std::string& binary) {
  if (!std::ifstream(scratch() / "unreadable.pth").is_open()) return "";
  const std::string as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
  if (testing::run_command(as_nobody + "test -x " + binary).exit_code == 0) return as_nobody;
  return std::nullopt;
}

std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  std::string out;
  std::size_t at = 0;
  for (std::size_t hit; (hit = text.find(from, at)) != std::string::npos; at = hit + from.size())
    out.append(text, at, hit - at).append(to);
  return out.append(text, at, std::string::npos);
}

std::string expand(const std::string& text, const Case& c) {
  std::string out = replace_all(text, "{T}", scratch().string());
  out = replace_all(out, "{F}", testing::fixture_path(""));
  out = replace_all(out, "//", "/");
  return replace_all(out, "{OUT}", (scratch() / ("run_" + c.name)).string());
}

// ---- the doc's rows ---------------------------------------------------------------------------------------

// The message as the doc shows it: paths made relative, lines joined, table pipes escaped.
std::string doc_text(std::string text) {
  text = replace_all(text, scratch().string() + "/", "");
  text = replace_all(text, scratch().string(), ".");
  text = replace_all(text, testing::fixture_path(""), "fixtures/");
  text = replace_all(text, "//", "/");
  text = replace_all(text, "|", "\\|");
  while (!text.empty() && text.back() == '\n') text.pop_back();
  // At most six lines of a long message.
  std::size_t at = 0;
  for (int line = 0; line < 6 && at != std::string::npos; ++line) at = text.find('\n', at + 1);
  if (at != std::string::npos) text = text.substr(0, at) + "\n…";
  return replace_all(text, "\n", "<br>");
}

// The command as the doc shows it: the shared bases by their names in the doc, paths relative.
std::string doc_command(const Case& c) {
  std::string args = replace_all(c.args, kTrain, "$TRAIN");
  args = replace_all(args, kPretrained, "$PRETRAINED");
  args = replace_all(args, kPredict, "$WEIGHTS");
  args = replace_all(args, "{T}/", "");
  args = replace_all(args, "{T}", ".");
  args = replace_all(args, "{F}/", "fixtures/");
  args = replace_all(replace_all(args, "{OUT}", "run"), "|", "\\|");
  return c.tool + " " + args;
}

std::map<std::string, std::string>& doc_rows() {
  static std::map<std::string, std::string> rows;
  return rows;
}

class DocWriter : public ::testing::EmptyTestEventListener {
  void OnTestProgramEnd(const ::testing::UnitTest&) override {
    const char* path = std::getenv("TL_BAD_INPUT_DOC");
    if (!path || !*path) return;
    std::ofstream out(path);
    for (const Case& c : cases())
      if (doc_rows().count(c.name)) out << doc_rows()[c.name] << "\n";
  }
};

const bool kDocWriter = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new DocWriter);
  return true;
}();

// ---- the rows ---------------------------------------------------------------------------------------------

class BadInput : public ::testing::TestWithParam<Case> {};

TEST_P(BadInput, IsRefusedClearly) {
  const Case& c = GetParam();
  TL_REQUIRE_FIXTURE(shapes, "train/shapes");
  const std::string binary = std::string(TL_TOOLS_DIR) + "/" + c.tool;
  const std::optional<std::string> prefix = c.needs_denial ? denial_prefix(binary) : "";
  if (!prefix)
    GTEST_SKIP() << "running as root, where chmod does not deny access, and user nobody cannot run " << binary
                 << " (setpriv): '" << c.args << "' cannot be made to fail here";
  const std::string args = expand(c.args, c);
  const std::string expected = expand(c.fragment, c);
  const fs::path keep = c.keep.empty() ? fs::path() : scratch() / c.keep;
  const std::string kept = c.keep.empty() ? std::string() : read_bytes(keep);

  // stderr alone carries the message (stdout has the tool's progress lines).
  const std::string command = "{ " + *prefix + "timeout 60 " + binary + " " + args + " >/dev/null; }";
  const testing::CommandResult r = testing::run_command(command);
  const std::string shown = c.tool + " " + args + "\n" + r.output;
  EXPECT_FALSE(r.crashed) << shown;
  EXPECT_NE(r.exit_code, 124) << "hung (killed by timeout after 60 s)\n" << shown;
  EXPECT_LT(r.exit_code, 128) << "killed by signal " << r.exit_code - 128 << "\n" << shown;
  EXPECT_EQ(r.exit_code, c.exit_code) << shown;
  EXPECT_NE(r.output.find(expected), std::string::npos) << "expected '" << expected << "' in\n" << shown;
  if (!c.keep.empty()) {
    EXPECT_EQ(read_bytes(keep), kept) << keep << " was changed\n" << shown;
  }
  if (c.exit_code != 0) {
    std::error_code ec;
    const fs::path run = scratch() / ("run_" + c.name);
    EXPECT_FALSE(fs::exists(run / "last.h5", ec)) << "a refused run wrote " << run / "last.h5";
  }

  doc_rows()[c.name] =
      str("| `", doc_command(c), "` | ", r.exit_code, " | ", doc_text(r.output), " | `", c.name, "` |");
}

INSTANTIATE_TEST_SUITE_P(Table, BadInput, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// A training set whose size leaves one image over for the last batch: BatchNorm cannot train on one image
// (PyTorch fails the same way), so that image is left out of each epoch and the run says so. Then --resume
// with a negative --resume-epochs.
TEST(BadInputRun, ALastBatchOfOneImageIsLeftOut) {
  TL_REQUIRE_FIXTURE(shapes, "train/shapes");
  const std::string out = (scratch() / "run_last_batch").string();
  const std::string binary = std::string(TL_TOOLS_DIR) + "/tl_train";
  const testing::CommandResult r = testing::run_command(
      "timeout 120 " + binary + " --data " + shapes +
      " --model mobilenet_v3_small --image-size 32 --epochs 1 --batch-size 47 --workers 2 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("48 training images in batches of 47 leave a last batch of one image"),
            std::string::npos)
      << r.output;

  const testing::CommandResult resumed =
      testing::run_command("timeout 60 " + binary + " --resume " + out + " --resume-epochs -3");
  EXPECT_FALSE(resumed.crashed) << resumed.output;
  EXPECT_EQ(resumed.exit_code, 1) << resumed.output;
  EXPECT_NE(resumed.output.find("--resume-epochs must be at least 1, got -3"), std::string::npos)
      << resumed.output;
}

}  // namespace
}  // namespace tl
