#include "factory/registry.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dilated {
namespace factory {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Shape {
  virtual ~Shape() = default;
  virtual double Area() const = 0;
};

struct Square : Shape {
  explicit Square(double side) : side(side) {}
  double Area() const override { return side * side; }
  double side;
};

using ShapeRegistry = Registry<Shape, double>;

absl::StatusOr<std::unique_ptr<Shape>> MakeSquare(double side) {
  if (side < 0) return absl::InvalidArgumentError("side must be >= 0");
  return std::make_unique<Square>(side);
}

TEST(Registry, CreatesByName) {
  ShapeRegistry registry;
  registry.Register("square", MakeSquare, __FILE__, __LINE__);
  absl::StatusOr<std::unique_ptr<Shape>> shape = registry.Create("square", 3.0);
  ASSERT_TRUE(shape.ok());
  EXPECT_EQ((*shape)->Area(), 9.0);
}

TEST(Registry, PassesCreatorErrorsThrough) {
  ShapeRegistry registry;
  registry.Register("square", MakeSquare, __FILE__, __LINE__);
  EXPECT_EQ(registry.Create("square", -1.0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Registry, UnknownNameIsNotFoundAndListsNames) {
  ShapeRegistry registry;
  registry.Register("square", MakeSquare, __FILE__, __LINE__);
  registry.Register("box", MakeSquare, __FILE__, __LINE__);
  const absl::Status status = registry.Create("circle", 1.0).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("'circle'; registered names: [box, square]"));
}

TEST(Registry, NamesAreSorted) {
  ShapeRegistry registry;
  registry.Register("zeta", MakeSquare, __FILE__, __LINE__);
  registry.Register("alpha", MakeSquare, __FILE__, __LINE__);
  EXPECT_THAT(registry.Names(), ElementsAre("alpha", "zeta"));
  EXPECT_TRUE(registry.Contains("zeta"));
  EXPECT_FALSE(registry.Contains("beta"));
}

TEST(Registry, UnregisterRemovesTheName) {
  ShapeRegistry registry;
  registry.Register("square", MakeSquare, __FILE__, __LINE__);
  EXPECT_TRUE(registry.Unregister("square"));
  EXPECT_FALSE(registry.Unregister("square"));
  EXPECT_EQ(registry.Create("square", 1.0).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(RegistryDeathTest, DuplicateNameAbortsNamingBothSites) {
  ShapeRegistry registry;
  registry.Register("square", MakeSquare, "first.cc", 10);
  EXPECT_DEATH(registry.Register("square", MakeSquare, "second.cc", 20),
               "'square' is registered twice, at first.cc:10 and at "
               "second.cc:20");
}

}  // namespace
}  // namespace factory
}  // namespace dilated
